"""What a list of tickets shows beside each one, read for the whole list in one
statement: its version (queries.ticket_version, what the bulk form carries) and the
inputs of its SLA clocks (schedule.sla.clocks_from: the status changes and the
conversation's times).

One statement, not one per fact: on PostgreSQL each statement is a round trip to the
server process, and on a busy machine each one waits for that process to be scheduled
(bench/web.py: four statements cost a queue page ~10 ms more than one under load).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    and_,
    any_,
    bindparam,
    func,
    literal,
    null,
    union_all,
)
from sqlmodel import Session, col, select

from helpdesk.store.models import Event, Message
from helpdesk.store.queries import version_token

_MESSAGE, _STATUS, _NEWEST_EVENT = 0, 1, 2  # the kinds of row the statement returns


@dataclass
class RowFacts:
    versions: dict[int, str] = field(default_factory=dict)  # by ticket id
    # clocks_from's inputs: status changes (at, old, new) in order, and the conversation
    # without internal notes (message id, direction, created_at) by id
    changes: dict[int, list[tuple[datetime, str, str]]] = field(default_factory=dict)
    times: dict[int, list[tuple[int, str, datetime]]] = field(default_factory=dict)


def row_facts(session: Session, ticket_ids: Collection[int]) -> RowFacts:
    """The versions and SLA inputs of these tickets (each id gets an entry)."""
    ids = list(dict.fromkeys(ticket_ids))
    facts = RowFacts({}, {i: [] for i in ids}, {i: [] for i in ids})
    if not ids:
        return facts
    among = _among(session, ids)
    # the first select's column types decode every row (created_at's on SQLite)
    messages = select(literal(_MESSAGE), Message.ticket_id, Message.id, Message.created_at,
                      Message.direction, literal(""), Message.internal) \
        .where(among(Message.ticket_id))
    statuses = select(literal(_STATUS), Event.ticket_id, Event.id, Event.at, Event.old,
                      Event.new, literal(False)) \
        .where(among(Event.ticket_id), and_(Event.kind == "change", Event.field == "status"))
    newest = select(literal(_NEWEST_EVENT), Event.ticket_id, func.max(Event.id), null(),
                    literal(""), literal(""), literal(False)) \
        .where(among(Event.ticket_id)).group_by(Event.ticket_id)
    newest_message: dict[int, int] = {}
    newest_event: dict[int, int] = {}
    changes: list[tuple[int, datetime, int, str, str]] = []
    times: list[tuple[int, int, str, datetime]] = []
    for kind, tid, rid, at, a, b, internal in session.execute(
            union_all(messages, statuses, newest)).all():
        if kind == _MESSAGE:
            newest_message[tid] = max(newest_message.get(tid, 0), rid)
            if not internal:
                times.append((tid, rid, a, at))
        elif kind == _STATUS:
            changes.append((tid, at, rid, a, b))
        else:
            newest_event[tid] = rid
    for tid, at, _, old, new in sorted(changes, key=lambda c: (c[1], c[2])):
        facts.changes[tid].append((at, old, new))
    for tid, mid, direction, at in sorted(times, key=lambda t: t[1]):
        facts.times[tid].append((mid, direction, at))
    facts.versions = {i: version_token(newest_event.get(i), newest_message.get(i)) for i in ids}
    return facts


def _among(session: Session, ids: list[int]) -> Callable[[Any], ColumnElement[bool]]:
    """`column IN ids` for the three parts: on PostgreSQL one array parameter they share
    (`= ANY`), not three lists of a parameter per id, which SQLAlchemy and psycopg
    render anew on every page (~1.5 ms of the desk's CPU for 50 rows)."""
    if session.get_bind().dialect.name == "postgresql":
        shared = bindparam("ticket_ids", ids, type_=ARRAY(Integer))
        return lambda column: column == any_(shared)
    return lambda column: col(column).in_(ids)
