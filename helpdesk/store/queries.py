"""Read-only questions other stages ask of the store (thread.py, notify, CLI)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    true,
    union,
    union_all,
)
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from helpdesk.config.priority import PRIORITIES
from helpdesk.store import contacts_ops, reads
from helpdesk.store.models import (
    Contact,
    Event,
    Message,
    Outbox,
    Quarantine,
    Review,
    Ticket,
    TicketStep,
    TicketTimer,
    msgid_key,
)


def ticket(session: Session, number: int) -> Ticket | None:
    return session.get(Ticket, number)


# The pipeline's questions, asked of every mail, are built once: a statement built per
# call costs more CPU in SQLAlchemy (building it, computing its cache key) than running it.

# `contact_for`'s `known` when nobody looked the address up before (None: looked, none)
NOT_LOOKED_UP: Any = object()


class StoredRef(NamedTuple):
    id: int
    ticket_id: int


_DEDUPE = Message.dedupe_key == bindparam("dedupe")
_STORED = select(Message.id, Message.ticket_id).where(_DEDUPE)


def stored_message(session: Session, dedupe_key: str) -> StoredRef | None:
    """The message already stored under this dedupe key (the mail is a duplicate of it)."""
    row = reads.rows(session, _STORED, {"dedupe": dedupe_key}).first()
    return StoredRef(int(row[0]), int(row[1])) if row is not None else None


class Notified(NamedTuple):
    """A notification we sent an agent (`notification_with_id`)."""

    message_id: str
    agent: str


@dataclass(frozen=True)
class MessageIdOwners:
    """The tickets some Message-IDs belong to, asked in one statement (the pipeline asks
    it once for every Message-ID a mail carries and names): what `ticket_we_sent`,
    `ticket_for_message_id` and `notification_with_id` answer for them."""

    sent: dict[str, int]  # by msgid_key: the ticket of a mail we sent under it
    stored: dict[str, int]  # by msgid_key: the ticket of the first mail stored under it
    notified: dict[str, tuple[int, Notified]]  # by msgid_key: (outbox id, notification)
    duplicate: StoredRef | None = None  # the message stored under the dedupe key asked

    def we_sent(self, message_id: str) -> int | None:
        return self.sent.get(msgid_key(message_id))

    def ticket_for(self, message_id: str) -> int | None:
        key = msgid_key(message_id)
        found = self.stored.get(key)
        return found if found is not None else self.sent.get(key)

    def notification(self, message_ids: Iterable[str]) -> Notified | None:
        """The first notification to an agent sent under one of `message_ids`."""
        found = [self.notified[k] for k in {msgid_key(m) for m in message_ids if m}
                 if k in self.notified]
        return min(found)[1] if found else None


_NONE = literal("")
_FIXED_KEYS = 16  # up to this many keys, a statement of that many plain parameters


@functools.cache
def _owners(n_keys: int, dedupe: bool = False) -> CompoundSelect:
    """`message_id_owners`' statement for `n_keys` keys (0: any number, an expanding IN,
    which SQLAlchemy rewrites on every run; a mail names a few Message-IDs, so a
    statement per number of them, built and compiled once, is what most mails run).
    `dedupe`: also the message stored under the parameter "dedupe" (stored_message's
    question, asked in the same statement)."""
    keys: Any = bindparam("keys", expanding=True) if not n_keys \
        else [bindparam(f"key{i}") for i in range(n_keys)]
    # per key, the first of each: outbox mail with a ticket, stored message, stored outgoing
    # message, notification to an agent (a few rows a key, however often a Message-ID recurs)
    parts = [
        select(literal(0).label("src"), Outbox.msgid_key, col(Outbox.ticket_id), Outbox.id,
               _NONE.label("agent"), _NONE.label("message_id"))
        .where(col(Outbox.id).in_(
            select(func.min(Outbox.id)).where(col(Outbox.msgid_key).in_(keys),
                                              col(Outbox.ticket_id).is_not(None))
            .group_by(Outbox.msgid_key))),
        select(literal(1), Message.msgid_key, Message.ticket_id, Message.id, _NONE, _NONE)
        .where(col(Message.id).in_(
            select(func.min(Message.id)).where(col(Message.msgid_key).in_(keys))
            .group_by(Message.msgid_key))),
        select(literal(2), Message.msgid_key, Message.ticket_id, Message.id, _NONE, _NONE)
        .where(col(Message.id).in_(
            select(func.min(Message.id)).where(col(Message.msgid_key).in_(keys),
                                               Message.direction == "out")
            .group_by(Message.msgid_key))),
        select(literal(3), Outbox.msgid_key, col(Outbox.ticket_id), Outbox.id, Outbox.agent,
               Outbox.message_id)
        .where(col(Outbox.id).in_(
            select(func.min(Outbox.id)).where(col(Outbox.msgid_key).in_(keys),
                                              Outbox.agent != "")
            .group_by(Outbox.msgid_key))),
    ]
    if dedupe:
        parts.append(select(literal(4), Message.msgid_key, Message.ticket_id, Message.id,
                            _NONE, _NONE).where(_DEDUPE))
    return union_all(*parts)


def message_id_owners(session: Session, message_ids: Iterable[str],
                      dedupe_key: str | None = None) -> MessageIdOwners:
    """Which tickets `message_ids` belong to (see MessageIdOwners), in one statement;
    with `dedupe_key`, also what `stored_message` answers for it (the pipeline asks both
    of every mail)."""
    keys = list(dict.fromkeys(msgid_key(m) for m in message_ids if m))
    if not keys:
        duplicate = stored_message(session, dedupe_key) if dedupe_key is not None else None
        return MessageIdOwners({}, {}, {}, duplicate)
    outbox: dict[str, int] = {}
    first: dict[str, int] = {}
    first_out: dict[str, int] = {}
    notified: dict[str, tuple[int, Notified]] = {}
    duplicate = None
    dedupe = dedupe_key is not None
    if len(keys) <= _FIXED_KEYS:
        stmt, params = _owners(len(keys), dedupe), {f"key{i}": key
                                                    for i, key in enumerate(keys)}
    else:
        stmt, params = _owners(0, dedupe), {"keys": keys}
    if dedupe:
        params["dedupe"] = dedupe_key
    for src, key, ticket_id, row_id, agent, message_id in reads.rows(
            session, stmt, params).all():
        if src == 4:
            duplicate = StoredRef(int(row_id), int(ticket_id))
        elif src == 3:
            notified[key] = (int(row_id), Notified(message_id, agent))
        else:
            (outbox, first, first_out)[src][key] = int(ticket_id)
    # a mail we sent: its outbox row first, else the message we keep of it
    return MessageIdOwners({**first_out, **outbox}, first, notified, duplicate)


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
    return message_id_owners(session, [message_id]).we_sent(message_id)


def notification_with_id(session: Session, message_ids: list[str]) -> Notified | None:
    """A notification we sent an agent under one of `message_ids` (the first one)."""
    return message_id_owners(session, message_ids).notification(message_ids)


def our_message_keys(session: Session, ticket_id: int) -> set[str]:
    """The msgid_keys of every mail we sent (or hold) on a ticket."""
    return customer_and_ours(session, ticket_id)[1]


def contact_addresses(session: Session, ticket_id: int) -> list[str]:
    """The ticket's customer's address ([] when it has none)."""
    return customer_and_ours(session, ticket_id)[0]


_TICKET = bindparam("ticket")
_CUSTOMER_AND_OURS = union_all(
    select(literal(0).label("src"), Contact.email)
    .join(Ticket, col(Ticket.contact_id) == col(Contact.id)).where(Ticket.id == _TICKET),
    select(literal(1).label("src"), Outbox.msgid_key).where(Outbox.ticket_id == _TICKET),
    select(literal(1).label("src"), Message.msgid_key)
    .where(Message.ticket_id == _TICKET, Message.direction == "out"),
)


def customer_and_ours(session: Session, ticket_id: int) -> tuple[list[str], set[str]]:
    """In one statement: the ticket's customer's address ([] when it has none) and the
    msgid_keys of every mail we sent (or hold) on it."""
    customer: list[str] = []
    ours: set[str] = set()
    for src, value in session.execute(_CUSTOMER_AND_OURS, {"ticket": ticket_id}).all():
        if src == 0:
            customer.append(value)
        elif value:
            ours.add(value)
    return customer, ours


class Heard(NamedTuple):
    """What thread.participants reads of a message on the conversation (not its text)."""

    ticket_id: int
    direction: str
    from_addr: str
    to: list[str]
    cc: list[str]
    in_reply_to: str
    references: str


_HEARD = select(Message.ticket_id, Message.direction, Message.from_addr, Message.to,
                Message.cc, Message.in_reply_to, Message.references).where(
    Message.ticket_id == _TICKET, col(Message.internal).is_(False)).order_by(Message.id)


def conversation_heads(session: Session, ticket_id: int) -> list[Heard]:
    """`conversation` without the messages' text (addresses and threading headers)."""
    return [Heard(*row) for row in session.execute(_HEARD, {"ticket": ticket_id}).all()]


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


@functools.cache
def _mails_to_by_kind(n_kinds: int) -> Select[tuple[str, int]]:
    """The count by kind for `n_kinds` kinds, one statement a number (the pipeline asks
    for two): an IN of plain parameters, not an expanding one, which SQLAlchemy would
    rewrite on every run."""
    kinds = [bindparam(f"kind{i}") for i in range(n_kinds)]
    return (select(Outbox.kind, func.count())
            .where(Outbox.recipient == bindparam("recipient"), col(Outbox.kind).in_(kinds),
                   Outbox.created_at >= bindparam("since"))
            .group_by(Outbox.kind))


def mails_to_since_by_kind(session: Session, recipient: str, since: datetime,
                           kinds: Sequence[str]) -> dict[str, int]:
    """How many outbox mails of each of `kinds` went to `recipient` since `since`."""
    counts = dict.fromkeys(kinds, 0)
    if not counts:  # IN () matches nothing
        return counts
    params: dict[str, Any] = {f"kind{i}": kind for i, kind in enumerate(kinds)}
    params.update(recipient=recipient.lower(), since=since)
    for kind, n in reads.rows(session, _mails_to_by_kind(len(kinds)), params).all():
        counts[kind] = int(n)
    return counts


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


def quarantined(session: Session, include_released: bool = False,
                newest: int | None = None) -> list[Quarantine]:
    """Held entries (or all), oldest first; `newest`: only that many, newest first."""
    stmt = select(Quarantine).order_by(Quarantine.id)
    if not include_released:
        stmt = stmt.where(Quarantine.status == "held")
    if newest is not None:
        stmt = stmt.order_by(None).order_by(col(Quarantine.id).desc()).limit(newest)
    return list(session.exec(stmt).all())


def quarantined_hash(session: Session, content_hash: str) -> Quarantine | None:
    stmt = select(Quarantine).where(
        Quarantine.content_hash == content_hash, Quarantine.status == "held"
    )
    return session.exec(stmt).first()


OPEN_STATUSES = ("new", "open", "pending")
CLOSED_STATUSES = ("resolved", "closed")


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
    return version_token(last_event, last_message)


def version_token(last_event: int | None, last_message: int | None) -> str:
    """`ticket_version` from a ticket's newest event and message ids (store.row_facts
    reads them for a page of tickets at once)."""
    return f"{last_event or 0}.{last_message or 0}"


# -- the desk's queue pages (web/queues.py) ------------------------------------------------
#
# Every list and count starts from the ticket table's indexes (status, queue, assignee,
# contact_id, id) and reads the SLA side only for the open tickets it already has, so a
# page costs the same with 100,000 closed tickets behind it. The SLA facts come from the
# scheduler's tables: a breach recorded in ticket_step, the next step in ticket_timer.


@dataclass(frozen=True)
class SlaKeys:
    """LIKE patterns of the scheduler's SLA step keys (schedule.sla owns their format;
    the store cannot import it, so the desk hands them in)."""

    any_step: str  # every SLA step
    breach: str  # every SLA breach
    first_response: str  # the breach of each kind
    next_response: str
    resolution: str


@dataclass(frozen=True)
class Scope:
    """Whose desk: `me` (the signed-in agent) and the queues they may see (None: all);
    the tickets assigned to `me` are in scope wherever they are (`in_scope`)."""

    me: str
    queues: tuple[str, ...] | None = None


@dataclass(frozen=True)
class QueueQuery:
    view: str = "all"  # one of VIEWS
    status: str = ""  # a status filter replaces the view's default (the open ones); "any"
    queue: str = ""
    assignee: str | None = None  # a name; "" unassigned
    contact_id: int | None = None
    sort: str = "priority"  # one of SORTS
    limit: int = 50
    offset: int = 0
    org_domains: tuple[str, ...] = ()  # an organisation's (store.contacts_ops)
    after_id: int | None = None  # sort "age" only: the page after this ticket (keyset)


VIEWS = ("mine", "unassigned", "all", "overdue", "at-risk", "waiting", "review")
SORTS = ("priority", "age", "sla", "activity")


def _unindexed(column: Any) -> Any:
    """The column compared without its index: a no-op coalesce (the columns are NOT
    NULL). A queue or an assignee holds closed tickets without end, and SQLite, which
    keeps no statistics, would walk their index rather than the selective one (the open
    statuses, a customer)."""
    return func.coalesce(column, "")


def in_scope(scope: Scope) -> ColumnElement[bool]:
    """The tickets `scope` may see: those in its queues, and those assigned to `me`
    wherever they are (web/access.py's rule)."""
    if scope.queues is None:
        return true()
    return or_(_unindexed(Ticket.queue).in_(scope.queues), Ticket.assignee == scope.me)


def _overdue(keys: SlaKeys, now: datetime) -> ColumnElement[bool]:
    """A breach that is due and the scheduler has not got to yet, or a breach recorded
    and not met since (the first response still missing, the customer's message still
    unanswered, the ticket still unresolved). Both as sets of ids drawn once, united:
    PostgreSQL evaluates an OR of the two per ticket, several times slower than both."""
    step, ticket = aliased(TicketStep), aliased(Ticket)
    # correlated with the step, not the ticket two levels up
    answered = exists().where(Message.ticket_id == step.ticket_id, Message.direction == "out",
                              col(Message.internal).is_(False), Message.created_at > step.at)
    unmet = or_(col(step.key).like(keys.resolution),
                and_(col(step.key).like(keys.first_response),
                     col(ticket.first_response_at).is_(None)),
                and_(col(step.key).like(keys.next_response), ~answered))
    recorded = select(ticket.id).where(
        col(ticket.status).in_(OPEN_STATUSES),
        exists().where(step.ticket_id == ticket.id, col(step.key).like(keys.breach), unmet))
    return col(Ticket.id).in_(union(_breach_ids(keys, now, due=True), recorded))


def _breach_ids(keys: SlaKeys, now: datetime, *, due: bool) -> Select[tuple[int]]:
    """The tickets whose scheduler timer is a breach, due by `now` or still to come (by
    the timers' due_at index, once, not a lookup per ticket)."""
    timer = aliased(TicketTimer)  # the list joins ticket_timer itself: not that one
    when = timer.due_at <= now if due else timer.due_at > now
    return select(timer.ticket_id).where(col(timer.key).like(keys.breach), when)


def _at_risk(keys: SlaKeys, now: datetime) -> ColumnElement[bool]:
    """The scheduler's next step is a breach still to come: the warning has gone out
    (or none is configured)."""
    return col(Ticket.id).in_(_breach_ids(keys, now, due=False))


def _held() -> ColumnElement[bool]:
    return col(Ticket.id).in_(select(Review.ticket_id).where(Review.status == "pending"))


def _view(view: str, scope: Scope, keys: SlaKeys, now: datetime) -> list[ColumnElement[bool]]:
    """The view's own condition, without its statuses (only that view's is built: the
    SLA ones take a few milliseconds of SQLAlchemy to put together)."""
    built: dict[str, Callable[[], list[ColumnElement[bool]]]] = {
        "mine": lambda: [_unindexed(Ticket.assignee) == scope.me],
        "unassigned": lambda: [_unindexed(Ticket.assignee) == ""],
        "all": lambda: [],
        "overdue": lambda: [_overdue(keys, now)],
        "at-risk": lambda: [_at_risk(keys, now)],
        "waiting": lambda: [],
        "review": lambda: [_held()],
    }
    return built[view]()


def _statuses(query: QueueQuery) -> ColumnElement[bool]:
    if query.status == "any":
        return true()
    if query.status:
        return Ticket.status == query.status
    if query.view == "waiting":
        return Ticket.status == "pending"
    return col(Ticket.status).in_(OPEN_STATUSES)


# built once: expressions are immutable, and building them is a queue page's CPU
_ORDERS: dict[str, list[Any]] = {
    "priority": [case({p: i for i, p in enumerate(PRIORITIES)}, value=Ticket.priority,
                      else_=-1).desc(), col(Ticket.id)],  # the oldest of a priority first
    "age": [col(Ticket.id)],  # ids rise with creation: the primary key sorts by age
    "sla": [col(TicketTimer.due_at).is_(None), col(TicketTimer.due_at), col(Ticket.id)],
    "activity": [col(Ticket.updated_at).desc(), col(Ticket.id).desc()],
}


def _order(sort: str) -> list[Any]:
    return _ORDERS[sort]


@dataclass(frozen=True)
class QueueRow:
    ticket: Ticket
    customer: str  # the contact's address ("" without one)
    customer_name: str
    next_sla_step: datetime | None  # the scheduler's next SLA step (the sla sort's key)


def queue_rows(session: Session, scope: Scope, query: QueueQuery, keys: SlaKeys,
               now: datetime) -> list[QueueRow]:
    """One page of a queue view, filtered and sorted: the page's ids first (sorting only
    narrow rows), then those tickets with their customer and next SLA step, in one
    statement (on PostgreSQL each statement is a round trip to the server)."""
    timer = and_(col(TicketTimer.ticket_id) == col(Ticket.id),
                 col(TicketTimer.key).like(keys.any_step))
    page = select(Ticket.id)
    if query.sort == "sla":
        page = page.outerjoin(TicketTimer, timer)
    page = page.where(in_scope(scope), _statuses(query),
                      *_view(query.view, scope, keys, now))
    if query.queue:
        page = page.where(_unindexed(Ticket.queue) == query.queue)
    if query.assignee is not None:
        page = page.where(_unindexed(Ticket.assignee) == query.assignee)
    if query.contact_id is not None:
        page = page.where(Ticket.contact_id == query.contact_id)
    if query.org_domains:
        page = page.where(contacts_ops.domains_filter(query.org_domains))
    if query.after_id is not None and query.sort == "age":
        page = page.where(col(Ticket.id) > query.after_id)
    ids = page.order_by(*_order(query.sort)).limit(query.limit).offset(query.offset) \
        .subquery()
    # the same order again over the page's rows: every order ends in the id, so it is
    # the page's (a ticket has at most one timer and one contact: no row twice)
    stmt = (select(Ticket, Contact.email, Contact.name, TicketTimer.due_at)
            .join(ids, ids.c.id == col(Ticket.id))
            .outerjoin(Contact, col(Contact.id) == col(Ticket.contact_id))
            .outerjoin(TicketTimer, timer).order_by(*_order(query.sort)))
    return [QueueRow(t, email or "", name or "", due)
            for t, email, name, due in session.exec(stmt).all()]


# the closed statuses are counted up to this many: they grow without end, and walking
# 100,000 of them to print an exact number on a tab is not worth a slow page
COUNT_CAP = 1000


@dataclass
class QueueCounts:
    views: dict[str, int]  # by view name
    queues: dict[str, int]  # open tickets by queue
    statuses: dict[str, int]  # tickets by status (closed ones up to COUNT_CAP + 1)

    def status_count(self, status: str) -> str:
        n = self.statuses.get(status, 0)
        return f"{COUNT_CAP}+" if status not in OPEN_STATUSES and n > COUNT_CAP else str(n)


def queue_counts(session: Session, scope: Scope, keys: SlaKeys, now: datetime) -> QueueCounts:
    """The count on every tab, in one statement: the open tickets grouped once (queue,
    status, assignee: the order of ix_ticket_desk, so no sort), each closed status
    counted up to COUNT_CAP, and the SLA and review views counted over the open tickets."""
    grouped = (select(literal("group").label("kind"), Ticket.queue, Ticket.status,
                      Ticket.assignee, func.count().label("n"))
               .where(in_scope(scope), col(Ticket.status).in_(OPEN_STATUSES))
               .group_by(Ticket.status, Ticket.queue, Ticket.assignee))
    parts: list[Any] = [grouped]
    for status in CLOSED_STATUSES:
        some = select(Ticket.id).where(in_scope(scope), Ticket.status == status) \
            .limit(COUNT_CAP + 1).subquery()
        parts.append(select(literal("status"), literal(""), literal(status), literal(""),
                            select(func.count()).select_from(some).scalar_subquery()))
    for view in ("overdue", "at-risk", "review"):
        parts.append(select(literal(view), literal(""), literal(""), literal(""), func.count())
                     .where(in_scope(scope), col(Ticket.status).in_(OPEN_STATUSES),
                            *_view(view, scope, keys, now)))
    counts = QueueCounts({v: 0 for v in VIEWS}, {}, {})
    for kind, queue, status, assignee, n in session.execute(union_all(*parts)).all():
        if kind == "status":
            counts.statuses[status] = int(n)
        elif kind != "group":
            counts.views[kind] = int(n)
        else:
            counts.statuses[status] = counts.statuses.get(status, 0) + int(n)
            counts.queues[queue] = counts.queues.get(queue, 0) + int(n)
            counts.views["all"] += int(n)
            counts.views["mine"] += int(n) if assignee == scope.me else 0
            counts.views["unassigned"] += int(n) if assignee == "" else 0
    counts.views["waiting"] = counts.statuses.get("pending", 0)
    return counts


def queue_names(session: Session) -> list[str]:
    """Every queue some ticket is in (in the database's collation order), from each name
    to the next by the queue index (a loose index scan): DISTINCT reads the whole index,
    an entry per ticket (100,000 tickets: ~45 ms on PostgreSQL, ~130 ms on SQLite,
    against ~0.3 and ~2 ms)."""
    later = aliased(Ticket)
    names = select(func.min(Ticket.queue).label("queue")).cte("names", recursive=True)
    following = select(func.min(later.queue)).where(later.queue > names.c.queue) \
        .scalar_subquery()
    names = names.union_all(select(following).where(names.c.queue.is_not(None)))
    return [str(q) for q in session.exec(select(names.c.queue)
                                         .where(names.c.queue.is_not(None))).all()]


def customer_events(session: Session, contact_id: int, scope: Scope,
                    limit: int = 30) -> list[tuple[Event, str]]:
    """The latest history of a customer's tickets (in scope), newest first, with each
    ticket's subject."""
    stmt = (select(Event, Ticket.subject).join(Ticket, col(Ticket.id) == col(Event.ticket_id))
            .where(Ticket.contact_id == contact_id, in_scope(scope), Event.kind != CREDIT)
            .order_by(col(Event.id).desc()).limit(limit))
    return [(e, s) for e, s in session.exec(stmt).all()]
