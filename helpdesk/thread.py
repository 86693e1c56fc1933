"""ParsedMail -> which ticket it belongs to, and why.

Order of trust: a signed reply address, then In-Reply-To, then References, then
the subject tag. The subject tag alone is trusted only from someone already on
the conversation; anyone else who types a ticket number gets a new ticket that
links the old one, so strangers cannot write into other people's tickets.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass

from sqlmodel import Session

from helpdesk.parse import ParsedMail
from helpdesk.spool import Envelope
from helpdesk.store import queries
from helpdesk.tokens import ReplyTarget, find_reply_target


@dataclass(frozen=True)
class ThreadResult:
    ticket_id: int | None
    reason: str
    linked_ticket_id: int | None = None
    reply_target: ReplyTarget | None = None

    @property
    def is_new(self) -> bool:
        return self.ticket_id is None


def subject_tag(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"\[{re.escape(prefix)}-(\d+)\]", re.IGNORECASE)


def resolve(session: Session, mail: ParsedMail, envelope: Envelope, *, local: str,
            prefix: str, secret: bytes) -> ThreadResult:
    candidates = [*envelope.rcpt_tos, *mail.delivered_to, *mail.to, *mail.cc]
    target, note = find_reply_target(candidates, local, prefix, secret)
    if target and queries.ticket(session, target.ticket):
        return ThreadResult(target.ticket, f"reply address {target.address}", None, target)
    for header, ids in (("In-Reply-To", mail.in_reply_to),
                        ("References", tuple(reversed(mail.references)))):
        for mid in ids:
            found = queries.ticket_for_message_id(session, mid)
            if found is not None:
                return ThreadResult(found, f"{header} <{mid}>")
    bounced = _bounced_message_id(mail)
    if bounced:
        found = queries.ticket_for_message_id(session, bounced)
        if found is not None:
            return ThreadResult(found, f"bounce of <{bounced}>")
    m = subject_tag(prefix).search(mail.subject)
    if m:
        number = int(m.group(1))
        if queries.ticket(session, number) is not None:
            if mail.from_addr in queries.participants(session, number):
                return ThreadResult(number, f"subject tag [{prefix}-{number}]")
            return ThreadResult(
                None, f"new: subject tag [{prefix}-{number}] from a non-participant", number
            )
    return ThreadResult(None, "new" + (f" ({note})" if note else ""))


def _bounced_message_id(mail: ParsedMail) -> str:
    """The Message-ID of our mail that a delivery status notification returns."""
    for att in mail.attachments:
        if att.content_type in ("message/rfc822", "text/rfc822-headers", "message/global"):
            try:
                inner = email.message_from_bytes(att.data, policy=email.policy.compat32)
                mid = str(inner.get("Message-ID", "") or "").strip()
            except Exception:
                continue
            if mid:
                return mid.strip("<>")
    return ""
