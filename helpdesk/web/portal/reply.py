"""A reply typed on the status page enters the pipeline exactly as a mail from the
customer would: an RFC 5322 message From the ticket's customer, To the ticket's signed
reply address, In-Reply-To the message the page showed last, put into the spool
(fsynced) like the SMTP listener's mail. Threading, dedupe, rules, reopening and the
agents' notifications are then the pipeline's own; the page says "received" only
after spool.put returned.

A form sent twice (a double click, a reload that re-posts) is one message: the form
carries a signed token made when the page was drawn (a nonce, the time, the message it
answers), and the mail's Message-ID, Date and In-Reply-To come from it, so both copies
have the same dedupe key (Message-ID and content hash) and the pipeline stores one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlmodel import Session, select

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.mail import tokens
from helpdesk.outgoing import compose as mailout
from helpdesk.outgoing import their_mail
from helpdesk.spool import Envelope, Spool
from helpdesk.store import queries
from helpdesk.store.models import Contact, Message, Ticket, msgid_key

FORM_SALT = "helpdesk.portal.reply"
MAX_TEXT = 20_000  # characters; a longer reply is refused with the text kept


@dataclass(frozen=True)
class FormToken:
    ticket_id: int
    nonce: str
    at: int  # when the page was drawn (epoch seconds): the mail's Date
    in_reply_to: str


def _serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.secret, salt=FORM_SALT)


def form_token(settings: Settings, session: Session, ticket_id: int) -> str:
    """The token the page's reply form carries."""
    last = queries.conversation(session, ticket_id)
    answers = last[-1].message_id if last else ""
    data = {"t": ticket_id, "n": secrets.token_urlsafe(16),
            "d": int(clock.now().timestamp()), "r": answers}
    return str(_serializer(settings).dumps(data))


def read_form_token(settings: Settings, ticket_id: int, value: str) -> FormToken | None:
    try:
        data: Any = _serializer(settings).loads(value)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("t") != ticket_id:
        return None
    nonce, at, answers = data.get("n"), data.get("d"), data.get("r")
    if not (isinstance(nonce, str) and isinstance(at, int) and isinstance(answers, str)):
        return None
    return FormToken(ticket_id, nonce, at, answers)


def _references(session: Session, ticket_id: int, answers: str) -> list[str]:
    if not answers:
        return []
    stmt = select(Message).where(Message.ticket_id == ticket_id,
                                 Message.msgid_key == msgid_key(answers))
    found = session.exec(stmt).first()
    earlier = found.references.split() if found else []
    return [*earlier[-19:], answers]


def compose(settings: Settings, session: Session, ticket: Ticket, form: FormToken,
            text: str) -> tuple[bytes, Envelope] | None:
    """The customer's mail and its envelope; None when the ticket has no customer."""
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    if contact is None:
        return None
    hd = settings.helpdesk
    reply_to = tokens.ticket_reply_address(settings, ticket.id)
    subject = mailout.tagged_subject(hd.ticket_prefix, int(ticket.id or 0), ticket.subject)
    digest = hashlib.sha256(f"{ticket.id}\0{form.nonce}".encode()).hexdigest()[:32]
    refs = _references(session, int(ticket.id or 0), form.in_reply_to)
    threading = {"In-Reply-To": f"<{refs[-1]}>",
                 "References": " ".join(f"<{r}>" for r in refs)} if refs else {}
    raw = their_mail.build(
        name=contact.name, address=contact.email, to=reply_to, subject=f"Re: {subject}",
        text=text, date=datetime.fromtimestamp(form.at, UTC),
        message_id=f"<portal.{digest}@portal.{hd.domain}>",
        headers={**threading, "X-Helpdesk-Route": "status page"})
    envelope = Envelope(route="portal", mail_from=contact.email, rcpt_tos=(reply_to,))
    return raw, envelope


def put(spool: Spool, raw: bytes, envelope: Envelope) -> str:
    """Into the spool, durably (fsync): the same call the SMTP listener makes."""
    return spool.put(raw, envelope)
