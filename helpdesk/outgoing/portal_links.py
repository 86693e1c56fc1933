"""Signed links to the customer's status pages (web/portal/): made here, where the mail
that carries them is written, and checked by the pages, which import this module (web
comes after outgoing; outgoing never imports web).

A link's token is itsdangerous-signed under the daemon secret with a salt per kind
(a ticket's page, a customer's list of tickets), so a token of one kind is no token of
the other, and rotating [helpdesk] secret ends every link at once. The token carries
when it was made: it works [portal] link_valid_days after that. The time comes from
helpdesk.clock, so tests and `--now` move it like every other clock of the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from helpdesk import clock
from helpdesk.config.settings import Settings

TICKET_SALT = "helpdesk.portal.ticket"
LIST_SALT = "helpdesk.portal.tickets"
CONFIRM_SALT = "helpdesk.portal.confirm"  # a web form request's "confirm" link
MAX_TOKEN = 400  # a real token is under 100 characters; longer ones are not even read

Verdict = Literal["valid", "expired", "invalid"]


@dataclass(frozen=True)
class Checked:
    """What a link's token says: `valid`, `expired` (signed by us, too old: `value` is
    still known, so a fresh link can go to the ticket's customer) or `invalid`."""

    verdict: Verdict
    value: int | str | None = None


def _serializer(settings: Settings, salt: str, at: datetime | None = None,
                ) -> URLSafeTimedSerializer:
    stamp = int((at or clock.now()).timestamp())

    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:  # the daemon's clock, not time.time()
            return stamp

    return URLSafeTimedSerializer(settings.secret, salt=salt, signer=Signer)


def ticket_token(settings: Settings, ticket_id: int, at: datetime | None = None) -> str:
    return str(_serializer(settings, TICKET_SALT, at).dumps(int(ticket_id)))


def list_token(settings: Settings, address: str, at: datetime | None = None) -> str:
    return str(_serializer(settings, LIST_SALT, at).dumps(address.lower()))


def _check(settings: Settings, salt: str, token: str, kind: type) -> Checked:
    if not token or len(token) > MAX_TOKEN or not token.isascii():
        return Checked("invalid")
    serializer = _serializer(settings, salt)
    max_age = settings.portal.link_valid_days * 86400
    try:
        value = serializer.loads(token, max_age=max_age)
        verdict: Verdict = "valid"
    except SignatureExpired as err:  # raised only after the signature was verified
        try:
            value = serializer.load_payload(err.payload) if err.payload is not None else None
        except BadSignature:
            return Checked("invalid")
        verdict = "expired"
    except BadSignature:
        return Checked("invalid")
    if not isinstance(value, kind) or isinstance(value, bool):
        return Checked("invalid")
    return Checked(verdict, value)


def check_ticket(settings: Settings, token: str) -> Checked:
    return _check(settings, TICKET_SALT, token, int)


def check_list(settings: Settings, token: str) -> Checked:
    return _check(settings, LIST_SALT, token, str)


def base(settings: Settings) -> str:
    return f"{settings.public_base_url()}/portal"


def ticket_url(settings: Settings, ticket_id: int | None) -> str:
    """The link to the ticket's status page for a mail to its customer; "" when the
    portal is off (the mail templates then leave the line out)."""
    if not settings.portal.enabled or not ticket_id:
        return ""
    return f"{base(settings)}/ticket/{ticket_token(settings, ticket_id)}"


def confirm_token(settings: Settings, ticket_id: int, at: datetime | None = None) -> str:
    return str(_serializer(settings, CONFIRM_SALT, at).dumps(int(ticket_id)))


def check_confirm(settings: Settings, token: str) -> Checked:
    return _check(settings, CONFIRM_SALT, token, int)


def confirm_url(settings: Settings, ticket_id: int | None) -> str:
    """The link in the mail asking a web form's visitor to confirm their request."""
    return f"{base(settings)}/confirm/{confirm_token(settings, int(ticket_id or 0))}"
