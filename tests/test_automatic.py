"""autoreply.classify: one verdict per mail on how automatic it is, with the reason."""

from __future__ import annotations

import pytest

from helpdesk.mail import automatic as autoreply
from helpdesk.mail import parse
from helpdesk.mail.automatic import Kind
from helpdesk.spool import Envelope
from tests.helpers import make_mail

SMTP = Envelope(route="smtp", mail_from="carol@customer.test")


def verdict(envelope: Envelope = SMTP, **kwargs: object) -> autoreply.Automatic:
    return autoreply.classify(parse.parse(make_mail(**kwargs).as_bytes()), envelope)  # type: ignore[arg-type]


def test_a_person_writing_may_be_answered() -> None:
    v = verdict()
    assert v == autoreply.PERSON
    assert (v.kind, v.no_answer, v.auto_reply, v.bounce, v.machine_written) == (
        Kind.PERSON, "", "", False, False)


@pytest.mark.parametrize(("kwargs", "kind", "reason"), [
    ({"headers": {"Auto-Submitted": "auto-replied"}}, Kind.AUTO_REPLY,
     "Auto-Submitted: auto-replied"),
    ({"headers": {"Precedence": "bulk"}}, Kind.AUTO_REPLY, "Precedence: bulk"),
    ({"headers": {"X-Autoreply": "yes"}}, Kind.AUTO_REPLY, "X-Autoreply header"),
    ({"sender": "noreply@shop.test"}, Kind.AUTO_REPLY, "sender noreply@shop.test"),
    ({"sender": "MAILER-DAEMON@mx.test"}, Kind.BOUNCE, "delivery status notification"),
    ({"headers": {"List-Id": "<news.vendor.test>"}}, Kind.NO_ANSWER, "list mail (list-id)"),
    ({"headers": {"Precedence": "list"}}, Kind.NO_ANSWER, "Precedence: list"),
    ({"headers": {"X-Auto-Response-Suppress": "OOF"}}, Kind.NO_ANSWER,
     "X-Auto-Response-Suppress: oof"),
    # a person's "no" is not automatic: Auto-Submitted: no
    ({"headers": {"Auto-Submitted": "no"}}, Kind.PERSON, ""),
])
def test_the_verdict_and_its_reason(kwargs: dict[str, object], kind: Kind, reason: str) -> None:
    v = verdict(**kwargs)
    assert (v.kind, v.reason) == (kind, reason)
    assert v.no_answer == reason  # whatever is not a person's mail gets no answer
    assert v.machine_written == (kind in (Kind.AUTO_REPLY, Kind.BOUNCE))
    assert v.auto_reply == (reason if kind is Kind.AUTO_REPLY else "")


def test_a_bounce_outranks_its_automatic_signs_and_the_envelope_counts_on_smtp_only() -> None:
    dsn = verdict(sender="postmaster@mx.test", headers={"Auto-Submitted": "auto-replied"})
    assert dsn.bounce and dsn.auto_reply == ""
    null = Envelope(route="smtp", mail_from="")
    assert verdict(null).auto_reply == "null envelope sender (automatic mail)"
    assert verdict(Envelope(route="imap:support", mail_from="")) == autoreply.PERSON
