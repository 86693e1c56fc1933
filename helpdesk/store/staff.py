"""The store's side of agents: their numbers, watchers, reviews, sent notifications,
and the messages we send on a ticket. Works inside the caller's transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from helpdesk import clock
from helpdesk.mail.mimeparts import Attachment as MailAttachment
from helpdesk.store import blobs, hook_events, search
from helpdesk.store.models import (
    AgentRecord,
    Attachment,
    Message,
    Outbox,
    Review,
    Ticket,
    Watcher,
    msgid_key,
)


def agent_number(session: Session, name: str) -> int:
    """The agent's stable number (see AgentRecord), allocated on first use."""
    found = session.exec(select(AgentRecord.id).where(AgentRecord.name == name)).first()
    if found is not None:
        return found
    row = AgentRecord(name=name)
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id


def agent_name(session: Session, number: int) -> str:
    row = session.get(AgentRecord, number)
    return row.name if row else ""


def notification_ticket(session: Session, agent: str, message_ids: Sequence[str]) -> int | None:
    """The ticket of a notification sent to `agent` under one of `message_ids`."""
    keys = [msgid_key(m) for m in message_ids if m]
    if not keys:
        return None
    stmt = select(Outbox.ticket_id).where(
        col(Outbox.msgid_key).in_(keys), Outbox.agent == agent,
        col(Outbox.ticket_id).is_not(None))
    return session.exec(stmt).first()


# -- watchers ------------------------------------------------------------------------

def watchers(session: Session, ticket_id: int) -> list[str]:
    stmt = select(Watcher.agent).where(Watcher.ticket_id == ticket_id).order_by(Watcher.agent)
    return list(session.exec(stmt).all())


def watch(session: Session, ticket_id: int, agent: str) -> bool:
    if session.get(Watcher, (ticket_id, agent)) is not None:
        return False
    session.add(Watcher(ticket_id=ticket_id, agent=agent))
    session.flush()
    return True


def unwatch(session: Session, ticket_id: int, agent: str) -> bool:
    row = session.get(Watcher, (ticket_id, agent))
    if row is None:
        return False
    session.delete(row)
    return True


# -- reviews -------------------------------------------------------------------------

def reviews(session: Session, ticket_id: int) -> list[Review]:
    return list(session.exec(select(Review).where(Review.ticket_id == ticket_id)
                             .order_by(col(Review.id))).all())


# built once (asked of every agent reply); the caller may decide the review: an ORM object
_PENDING_REVIEW = select(Review).where(Review.ticket_id == bindparam("ticket"),
                                       Review.status == "pending").order_by(col(Review.id).desc())


def pending_review(session: Session, ticket_id: int) -> Review | None:
    return session.exec(_PENDING_REVIEW, params={"ticket": ticket_id}).first()


def decide_review(review: Review, status: str, *, by: str, reason: str = "") -> None:
    """End a pending review: approved, rejected, or withdrawn (the customer wrote again)."""
    review.status = status
    review.decided_by, review.reason, review.decided_at = by, reason, clock.now()


# -- messages ------------------------------------------------------------------------

def last_customer_message(session: Session, ticket_id: int) -> Message | None:
    """The newest mail from the customer's side: not an agent's own mail, nor an
    automatic reply (both internal)."""
    stmt = (
        select(Message)
        .where(Message.ticket_id == ticket_id, Message.direction == "in",
               col(Message.internal).is_(False))
        .order_by(col(Message.id).desc())
    )
    return session.exec(stmt).first()


def store_outgoing(session: Session, data_dir: Path, ticket: Ticket, *, message_id: str,
                   from_addr: str, to: Sequence[str], cc: Sequence[str], subject: str,
                   text: str, raw: bytes, author: str, internal: bool = False,
                   in_reply_to: str = "", references: Sequence[str] = (),
                   attachments: Sequence[MailAttachment] = ()) -> Message:
    """Keep what we sent (or hold for review) on the ticket as a direction "out" message."""
    stored = blobs.for_session(session, data_dir)
    dedupe = hashlib.sha256(f"out\0{message_id}".encode()).hexdigest()
    message = Message(
        ticket_id=ticket.id, direction="out", internal=internal, message_id=message_id,
        msgid_key=msgid_key(message_id), dedupe_key=dedupe, from_addr=from_addr,
        from_name=author, to=list(to), cc=list(cc), subject=subject, body_text=text,
        in_reply_to=in_reply_to, references=" ".join(references),
        raw_path=stored.put("raw", raw, ".eml") if raw else "",
        route=f"agent:{author}", threaded_by=f"reply by {author}", size=len(raw),
        sent_date=None if internal else clock.now())
    session.add(message)
    session.flush()
    for att in attachments:
        sha = stored.put_attachment(att.data)
        session.add(Attachment(message_id=message.id, filename=att.filename,
                               content_type=att.content_type, size=att.size, sha256=sha,
                               inline=att.inline, content_id=att.content_id))
    search.index_message(session, message.id, new=True)
    if not internal:  # a reply held for review is not sent: no event (see docs/api.md)
        hook_events.replied_by_agent(session, ticket, author)
    return message
