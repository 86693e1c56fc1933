"""Read-only questions other stages ask of the store (thread.py, notify, CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, func
from sqlmodel import Session, col, select

from helpdesk.store.models import Contact, Event, Message, Outbox, Quarantine, Ticket, msgid_key


def ticket(session: Session, number: int) -> Ticket | None:
    return session.get(Ticket, number)


def stored_message(session: Session, dedupe_key: str) -> Message | None:
    """The message already stored under this dedupe key (the mail is a duplicate of it)."""
    stmt = select(Message).where(Message.dedupe_key == dedupe_key)
    return session.exec(stmt).first()


def ticket_for_message_id(session: Session, message_id: str) -> int | None:
    """The ticket a Message-ID belongs to: one we stored, or one we sent."""
    key = msgid_key(message_id)
    stmt = select(Message.ticket_id).where(Message.msgid_key == key).order_by(Message.id)
    found = session.exec(stmt).first()
    if found is not None:
        return found
    out = select(Outbox.ticket_id).where(
        Outbox.msgid_key == key, col(Outbox.ticket_id).is_not(None)
    )
    return session.exec(out).first()


def ticket_we_sent(session: Session, message_id: str) -> int | None:
    """The ticket of a mail we sent under `message_id` (acknowledgement, reply, notice,
    notification); None when the Message-ID is not one of ours."""
    key = msgid_key(message_id)
    out = select(Outbox.ticket_id).where(
        Outbox.msgid_key == key, col(Outbox.ticket_id).is_not(None)
    )
    found = session.exec(out).first()
    if found is not None:
        return found
    stmt = select(Message.ticket_id).where(Message.msgid_key == key,
                                           Message.direction == "out")
    return session.exec(stmt).first()


def notification_with_id(session: Session, message_ids: list[str]) -> Outbox | None:
    """A notification we sent an agent under one of `message_ids`."""
    keys = [msgid_key(m) for m in message_ids if m]
    if not keys:
        return None
    stmt = select(Outbox).where(col(Outbox.msgid_key).in_(keys), Outbox.agent != "")
    return session.exec(stmt.order_by(Outbox.id)).first()


def our_message_keys(session: Session, ticket_id: int) -> set[str]:
    """The msgid_keys of every mail we sent (or hold) on a ticket."""
    out = select(Outbox.msgid_key).where(Outbox.ticket_id == ticket_id)
    stored = select(Message.msgid_key).where(Message.ticket_id == ticket_id,
                                             Message.direction == "out")
    return {*session.exec(out).all(), *session.exec(stored).all()} - {""}


def contact_addresses(session: Session, ticket_id: int) -> list[str]:
    """The ticket's customer's address ([] when it has none)."""
    t = session.get(Ticket, ticket_id)
    contact = session.get(Contact, t.contact_id) if t and t.contact_id else None
    return [contact.email] if contact else []


def conversation(session: Session, ticket_id: int) -> list[Message]:
    """The ticket's messages the customer side sees, oldest first: what they wrote and
    what we sent them; internal ones (agents' mail, automatic answers, mail from
    strangers) are not part of it."""
    stmt = select(Message).where(Message.ticket_id == ticket_id,
                                 col(Message.internal).is_(False)).order_by(Message.id)
    return list(session.exec(stmt).all())


def contact_by_email(session: Session, email: str) -> Contact | None:
    return session.exec(select(Contact).where(Contact.email == email.lower())).first()


def previous_ticket_count(session: Session, email: str) -> int:
    contact = contact_by_email(session, email)
    if contact is None:
        return 0
    stmt = select(func.count()).select_from(Ticket).where(Ticket.contact_id == contact.id)
    return int(session.exec(stmt).one())


def mails_to_since(session: Session, recipient: str, since: datetime,
                   kinds: Sequence[str]) -> int:
    """How many outbox mails of `kinds` went to `recipient` since `since`."""
    stmt = (
        select(func.count())
        .select_from(Outbox)
        .where(
            Outbox.recipient == recipient.lower(),
            col(Outbox.kind).in_(kinds),
            Outbox.created_at >= since,
        )
    )
    return int(session.exec(stmt).one())


def is_our_automatic_mail(session: Session, message_ids: Sequence[str]) -> bool:
    """Whether one of `message_ids` is an automatic mail we sent."""
    keys = [msgid_key(m) for m in message_ids if m]
    if not keys:
        return False
    stmt = select(Outbox.id).where(col(Outbox.msgid_key).in_(keys),
                                   col(Outbox.automatic).is_(True))
    return session.exec(stmt).first() is not None


CREDIT = "credit"  # the event naming whose work a figure of `helpdesk stats` is


def credited(session: Session, figure: str,
             ticket_ids: Sequence[int] | Select[tuple[int | None]]) -> dict[int, str]:
    """The agent each ticket's `figure` is credited to (the latest credit event), for the
    tickets (ids, or a query for them) that have one."""
    stmt = (select(Event.ticket_id, Event.actor)
            .where(Event.kind == CREDIT, Event.field == figure,
                   col(Event.ticket_id).in_(ticket_ids))
            .order_by(col(Event.id)))
    return dict(session.exec(stmt).all())


def credited_to(session: Session, figure: str, ticket: Ticket) -> str:
    """The agent the ticket's `figure` is credited to; its assignee when none is."""
    tid = int(ticket.id or 0)
    return credited(session, figure, [tid]).get(tid, ticket.assignee)


def messages(session: Session, ticket_id: int) -> list[Message]:
    stmt = select(Message).where(Message.ticket_id == ticket_id).order_by(Message.id)
    return list(session.exec(stmt).all())


def events(session: Session, ticket_id: int) -> list[Event]:
    stmt = select(Event).where(Event.ticket_id == ticket_id).order_by(Event.id)
    return list(session.exec(stmt).all())


def tickets(session: Session, status: str | None = None, *, assignee: str | None = None,
            queue: str | None = None, customer: str | None = None) -> list[Ticket]:
    """Tickets by id; `customer` matches part of the customer's address, any case."""
    stmt = select(Ticket).order_by(Ticket.id)
    if status:
        stmt = stmt.where(Ticket.status == status)
    if assignee is not None:
        stmt = stmt.where(Ticket.assignee == assignee)
    if queue is not None:
        stmt = stmt.where(Ticket.queue == queue)
    if customer:
        stmt = stmt.join(Contact, col(Ticket.contact_id) == col(Contact.id)).where(
            col(Contact.email).icontains(customer, autoescape=True))
    return list(session.exec(stmt).all())


def followers(session: Session, ticket_id: int) -> list[int]:
    """Tickets opened as a follow-up of this one (a late reply to it)."""
    stmt = select(Ticket.id).where(Ticket.linked_ticket_id == ticket_id).order_by(Ticket.id)
    return [int(i) for i in session.exec(stmt).all() if i is not None]


def quarantined(session: Session, include_released: bool = False) -> list[Quarantine]:
    stmt = select(Quarantine).order_by(Quarantine.id)
    if not include_released:
        stmt = stmt.where(Quarantine.status == "held")
    return list(session.exec(stmt).all())


def quarantined_hash(session: Session, content_hash: str) -> Quarantine | None:
    stmt = select(Quarantine).where(
        Quarantine.content_hash == content_hash, Quarantine.status == "held"
    )
    return session.exec(stmt).first()


OPEN_STATUSES = ("new", "open", "pending")


def last_assignee_among(session: Session, members: list[str]) -> str | None:
    """Who of `members` got the most recent ticket (for round-robin)."""
    stmt = (
        select(Ticket.assignee)
        .where(col(Ticket.assignee).in_(members))
        .order_by(col(Ticket.id).desc())
        .limit(1)
    )
    return session.exec(stmt).first()


def open_ticket_counts(session: Session, members: list[str]) -> dict[str, int]:
    stmt = (
        select(Ticket.assignee, func.count())
        .where(col(Ticket.assignee).in_(members), col(Ticket.status).in_(OPEN_STATUSES))
        .group_by(Ticket.assignee)
    )
    counts = {m: 0 for m in members}
    counts.update({name: int(n) for name, n in session.exec(stmt).all()})
    return counts


def ticket_version(session: Session, ticket_id: int) -> str:
    """A token that changes whenever anything is recorded on the ticket (an event or a
    message, by mail, web, CLI or scheduler): a desk form carries the version it was
    drawn from, and a POST with an older one is stale (409), never silently applied."""
    last_event = session.exec(select(func.max(Event.id)).where(Event.ticket_id == ticket_id)).one()
    last_message = session.exec(
        select(func.max(Message.id)).where(Message.ticket_id == ticket_id)).one()
    return f"{last_event or 0}.{last_message or 0}"
