"""Links between tickets, merges and splits, in the caller's session (the caller owns the
transaction and records the history; agents/ops_commands decides who may do what).

Links: "related" is symmetric (stored once, read both ways); "parent" points from the
child to its parent. Merges: the source's messages, history and watchers move onto the
target and the source becomes a pointer (`survivor`), so mail threading onto it lands
on the target (thread.resolve asks `survivor`). What moved is kept on the merge's row,
so `unmerge` moves exactly that back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, update
from sqlmodel import Session, col, select

from helpdesk import clock
from helpdesk.store import reads, staff
from helpdesk.store.models import (
    Contact,
    Event,
    Message,
    Outbox,
    Status,
    Ticket,
    Watcher,
    msgid_key,
)
from helpdesk.store.ops_models import TicketLink, TicketMerge, TimeEntry

RELATED, PARENT = "related", "parent"
# "Re: Fwd: [HD-12] ..." -> "...": a split ticket's subject is the mail's own
_SUBJECT_PREFIX = re.compile(
    r"^(?:\s*(?:re|aw|fwd?|wg|sv|vs)\s*:|\s*\[[A-Za-z][A-Za-z0-9]*-\d+\])+", re.IGNORECASE)
OPEN = (Status.NEW.value, Status.OPEN.value, Status.PENDING.value)


# -- links -------------------------------------------------------------------------------

def parent_of(session: Session, ticket_id: int) -> int | None:
    stmt = select(TicketLink.other_id).where(TicketLink.ticket_id == ticket_id,
                                             TicketLink.kind == PARENT)
    return session.exec(stmt).first()


def children_of(session: Session, ticket_id: int) -> list[Ticket]:
    stmt = (select(Ticket).join(TicketLink, col(TicketLink.ticket_id) == col(Ticket.id))
            .where(TicketLink.other_id == ticket_id, TicketLink.kind == PARENT)
            .order_by(col(Ticket.id)))
    return list(session.exec(stmt).all())


def open_children(session: Session, ticket_id: int) -> list[Ticket]:
    return [t for t in children_of(session, ticket_id) if t.status in OPEN]


def related_to(session: Session, ticket_id: int) -> list[int]:
    stmt = select(TicketLink).where(TicketLink.kind == RELATED, or_(
        col(TicketLink.ticket_id) == ticket_id, col(TicketLink.other_id) == ticket_id))
    found = {link.other_id if link.ticket_id == ticket_id else link.ticket_id
             for link in session.exec(stmt).all()}
    return sorted(found)


def ancestors(session: Session, ticket_id: int) -> list[int]:
    """The ticket's parent, its parent's parent, ...; stops at a loop (none can be made
    through `set_parent`, but a hand-edited database should not hang us)."""
    chain: list[int] = []
    current = parent_of(session, ticket_id)
    while current is not None and current not in chain and current != ticket_id:
        chain.append(current)
        current = parent_of(session, current)
    return chain


def link_related(session: Session, ticket_id: int, other_id: int, actor: str) -> bool:
    """False when the two are already related (either way round)."""
    if other_id in related_to(session, ticket_id):
        return False
    session.add(TicketLink(ticket_id=ticket_id, other_id=other_id, kind=RELATED, actor=actor))
    session.flush()
    return True


def set_parent(session: Session, ticket_id: int, parent_id: int, actor: str) -> int | None:
    """Make `parent_id` the ticket's parent; returns the parent it had before (None:
    none). The caller checked that this makes no loop."""
    row = session.exec(select(TicketLink).where(TicketLink.ticket_id == ticket_id,
                                                TicketLink.kind == PARENT)).first()
    before = row.other_id if row is not None else None
    if row is None:
        session.add(TicketLink(ticket_id=ticket_id, other_id=parent_id, kind=PARENT,
                               actor=actor))
    else:
        row.other_id, row.actor, row.created_at = parent_id, actor, clock.now()
        session.add(row)
    session.flush()
    return before


def unlink(session: Session, ticket_id: int, other_id: int) -> list[str]:
    """Remove every link between the two tickets; returns what each was, as seen from
    `ticket_id` ("related", "parent" (other was its parent), "child")."""
    stmt = select(TicketLink).where(or_(
        (col(TicketLink.ticket_id) == ticket_id) & (col(TicketLink.other_id) == other_id),
        (col(TicketLink.ticket_id) == other_id) & (col(TicketLink.other_id) == ticket_id)))
    removed = []
    for link in session.exec(stmt).all():
        if link.kind == RELATED:
            removed.append(RELATED)
        else:
            removed.append(PARENT if link.ticket_id == ticket_id else "child")
        session.delete(link)
    session.flush()
    return removed


def links(session: Session, ticket_id: int, prefix: str) -> dict[str, object]:
    """The ticket's links and merges as plain data (`tickets show --json`, the API)."""
    def ref(number: int | None) -> str | None:
        return f"{prefix}-{number}" if number is not None else None
    merge = active_merge(session, ticket_id)
    return {"parent": ref(parent_of(session, ticket_id)),
            "children": [ref(t.id) for t in children_of(session, ticket_id)],
            "related": [ref(n) for n in related_to(session, ticket_id)],
            "merged_into": ref(merge.target_id) if merge else None,
            "merged_here": [ref(m.source_id) for m in merged_into(session, ticket_id)]}


# -- merges ------------------------------------------------------------------------------

# the merges in force from the ticket "source", newest first (built once: `survivor` is
# asked of every mail threaded to a ticket)
_IN_FORCE_FROM = (TicketMerge.source_id == bindparam("source"),
                  col(TicketMerge.undone_at).is_(None))
_ACTIVE_MERGE = select(TicketMerge).where(*_IN_FORCE_FROM).order_by(col(TicketMerge.id).desc())
_MERGED_INTO = (select(TicketMerge.target_id).where(*_IN_FORCE_FROM)
                .order_by(col(TicketMerge.id).desc()))


def active_merge(session: Session, source_id: int) -> TicketMerge | None:
    """The merge that makes `source_id` a pointer, if any."""
    return session.exec(_ACTIVE_MERGE, params={"source": source_id}).first()


def merged_into(session: Session, target_id: int) -> list[TicketMerge]:
    """The merges onto `target_id` still in force, oldest first."""
    stmt = (select(TicketMerge).where(TicketMerge.target_id == target_id,
                                      col(TicketMerge.undone_at).is_(None))
            .order_by(col(TicketMerge.id)))
    return list(session.exec(stmt).all())


def survivor(session: Session, ticket_id: int) -> int:
    """Where mail for `ticket_id` belongs: the ticket it was merged into (followed through
    a merged target, at most a few steps), else itself."""
    seen = {ticket_id}
    current = ticket_id
    while (row := reads.rows(session, _MERGED_INTO, {"source": current}).first()) is not None \
            and row[0] not in seen and len(seen) < 20:
        current = int(row[0])
        seen.add(current)
    return current


@dataclass(frozen=True)
class Moved:
    messages: int
    events: int
    watchers: list[str]


def merge(session: Session, source: Ticket, target: Ticket, actor: str) -> TicketMerge:
    """Move the source's messages, history, time entries and watchers onto the target and
    record it.
    The caller records the events saying so (after this, so they stay where they are)."""
    sid, tid = int(source.id or 0), int(target.id or 0)
    message_ids = list(session.exec(select(Message.id).where(Message.ticket_id == sid)).all())
    event_ids = list(session.exec(select(Event.id).where(Event.ticket_id == sid)).all())
    time_ids = list(session.exec(select(TimeEntry.id).where(TimeEntry.ticket_id == sid)).all())
    session.execute(update(Message).where(col(Message.ticket_id) == sid).values(ticket_id=tid))
    session.execute(update(Event).where(col(Event.ticket_id) == sid).values(ticket_id=tid))
    session.execute(update(TimeEntry).where(col(TimeEntry.ticket_id) == sid)
                    .values(ticket_id=tid))
    added = []
    for name in staff.watchers(session, sid):
        staff.unwatch(session, sid, name)
        if staff.watch(session, tid, name):
            added.append(name)
    row = TicketMerge(source_id=sid, target_id=tid, actor=actor, at=clock.now(),
                      status_before=source.status,
                      message_ids=[int(i) for i in message_ids if i is not None],
                      event_ids=[int(i) for i in event_ids if i is not None],
                      time_entry_ids=[int(i) for i in time_ids if i is not None],
                      watchers_added=added)
    session.add(row)
    target.updated_at = source.updated_at = clock.now()
    session.flush()
    return row


def unmerge(session: Session, row: TicketMerge, actor: str) -> Moved:
    """Move back what the merge moved (what arrived on the target since stays there)."""
    sid, tid = row.source_id, row.target_id
    moved_messages = session.execute(
        update(Message).where(col(Message.id).in_(row.message_ids),
                              col(Message.ticket_id) == tid).values(ticket_id=sid))
    moved_events = session.execute(
        update(Event).where(col(Event.id).in_(row.event_ids),
                            col(Event.ticket_id) == tid).values(ticket_id=sid))
    if row.time_entry_ids:
        session.execute(update(TimeEntry).where(col(TimeEntry.id).in_(row.time_entry_ids),
                                                col(TimeEntry.ticket_id) == tid)
                        .values(ticket_id=sid))
    for name in row.watchers_added:
        if session.get(Watcher, (tid, name)) is not None:
            staff.unwatch(session, tid, name)
            staff.watch(session, sid, name)
    row.undone_at, row.undone_by = clock.now(), actor
    session.add(row)
    session.flush()
    return Moved(moved_messages.rowcount or 0,  # type: ignore[attr-defined]
                 moved_events.rowcount or 0, list(row.watchers_added))  # type: ignore[attr-defined]


def undo_deadline(row: TicketMerge, window: timedelta) -> datetime:
    return row.at + window


# -- splitting ---------------------------------------------------------------------------

# notifications about a customer-side mail: the mail is the ticket's newest one from
# outside stored before the notification (notify queues it in the same transaction)
_ABOUT_A_MAIL = ("notify-new", "notify-reply", "notify-unverified")


def notified_message(session: Session, ticket_id: int, agent: str,
                     message_ids: list[str]) -> int | None:
    """The message a notification to `agent` (one of `message_ids`) was about."""
    keys = [msgid_key(m) for m in message_ids if m]
    if not keys:
        return None
    row = session.exec(select(Outbox).where(
        col(Outbox.msgid_key).in_(keys), Outbox.agent == agent,
        Outbox.ticket_id == ticket_id, col(Outbox.kind).in_(_ABOUT_A_MAIL))).first()
    if row is None:
        return None
    stmt = (select(Message.id).where(Message.ticket_id == ticket_id,
                                     Message.direction == "in",
                                     col(Message.created_at) <= row.created_at)
            .where(col(Message.route).not_in(("cli", "web")))
            .order_by(col(Message.id).desc()))
    return session.exec(stmt).first()


def first_message(session: Session, ticket_id: int) -> int | None:
    stmt = select(Message.id).where(Message.ticket_id == ticket_id).order_by(col(Message.id))
    return session.exec(stmt).first()


def split_off(session: Session, ticket: Ticket, message: Message, actor: str) -> Ticket:
    """A new ticket from `message` (moved onto it), in the same queue, for the message's
    sender, related to `ticket`. The caller records the history."""
    contact = session.exec(select(Contact).where(
        Contact.email == message.from_addr.lower())).first()
    subject = _SUBJECT_PREFIX.sub("", message.subject).strip() or ticket.subject
    new = Ticket(subject=subject, contact_id=contact.id if contact else ticket.contact_id,
                 queue=ticket.queue, priority=ticket.priority, status=Status.OPEN.value)
    session.add(new)
    session.flush()
    message.ticket_id = int(new.id or 0)
    message.threaded_by = f"split from ticket {ticket.id} by {actor}; was: " \
        f"{message.threaded_by}"[:2000]
    session.add(message)
    link_related(session, int(new.id or 0), int(ticket.id or 0), actor)
    ticket.updated_at = new.updated_at = clock.now()
    session.flush()
    return new
