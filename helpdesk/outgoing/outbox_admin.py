"""The outbox by hand (`helpdesk outbox`): what waits or was given up, and why; one mail
as it was sent; a given-up mail sent again once its cause is fixed (a relay that was
down past [outgoing] give_up_after_hours, a recipient's typo corrected at their end).

A mail sent again keeps its row, Message-ID and first try's time: it gets one more try,
and a relay that defers it again gives it up again at once (the give-up time runs from
the first try). The retention watermark is moved back before it, so its text is dropped
in its time after it is sent (schedule/retention.py).
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from helpdesk.outgoing.requeue import requeue_dead
from helpdesk.store.models import Outbox
from helpdesk.store.scheduler_state import OUTBOX_TEXT_MARK, lower_mark

STATUSES = ("queued", "sending", "sent", "dead")
HEAD_BYTES = 16 * 1024  # enough for any header we show; never a whole attachment


@dataclass(frozen=True)
class Entry:
    id: int
    status: str
    kind: str
    ticket_id: int | None
    rcpt_tos: list[str]
    attempts: int
    last_error: str
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime
    size: int  # bytes of the mail's text; 0 once retention dropped it
    subject: str


def _subject(head: bytes) -> str:
    parsed = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(head)
    try:
        return str(parsed.get("Subject", "") or "")
    except (ValueError, LookupError):  # ours are well-formed; this is for a damaged one
        return "(unreadable subject)"


def entries(session: Session, status: str | None, limit: int) -> list[Entry]:
    """The newest rows (of one status, or all), their subjects read from the head only."""
    stmt = (select(Outbox.id, Outbox.status, Outbox.kind, Outbox.ticket_id, Outbox.rcpt_tos,
                   Outbox.attempts, Outbox.last_error, Outbox.created_at, Outbox.sent_at,
                   Outbox.next_attempt_at, func.length(Outbox.raw),
                   func.substr(Outbox.raw, 1, HEAD_BYTES))
            .order_by(col(Outbox.id).desc()).limit(limit))
    if status is not None:
        stmt = stmt.where(Outbox.status == status)
    return [Entry(int(r[0] or 0), r[1], r[2], r[3], list(r[4]), r[5], r[6], r[7], r[8], r[9],
                  int(r[10] or 0), _subject(bytes(r[11] or b"")))
            for r in session.exec(stmt).all()]


def send_again(session: Session, ids: Iterable[int] | None) -> list[int]:
    """Queue given-up (dead) mails again, due now: those of `ids`, or every one (None).
    Returns the ids queued; ids that are not dead are left as they are."""
    found = requeue_dead(session, Outbox, ids)
    if found:
        lower_mark(session, OUTBOX_TEXT_MARK, found[0])
    return found
