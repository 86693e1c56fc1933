"""A cheap mark of "something a ticket list depends on may have changed": what a reader
compares to know that a figure drawn earlier (the desk's tab counts) is still what the
database would say now, without drawing it again.

Every change to a ticket is recorded as an event or a message (tickets.change, the
pipeline, run_commands: the same rule ticket versions rest on); the scheduler's SLA
facts are ticket_step rows and reviews are rows of their own. So the newest id of those
four tables moves with every change, and the SLA views, which also move with time alone,
stay the same until the next scheduler timer falls due.

PostgreSQL takes an id when a row is inserted, not when it is committed: a transaction
in flight when a figure was drawn can commit an id lower than the newest one seen. So
the mark also holds the transactions of this database then in flight, and a later mark
matches only if none of them has finished since (a figure drawn from it could then
differ).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, literal_column, select
from sqlmodel import Session, col

from helpdesk.store.models import Event, Message, Review, TicketStep, TicketTimer


@dataclass(frozen=True)
class Mark:
    newest: tuple[int, ...]  # the newest event, message, SLA step and review ids
    next_due: datetime | None  # the soonest scheduler timer after the mark's moment
    in_flight: frozenset[int]  # PostgreSQL: transactions running when it was taken

    def still(self, later: Mark, at: datetime) -> bool:
        """Whether a figure drawn at this mark is what a read at `later` (taken at the
        moment `at`) would draw: nothing recorded since, no timer fallen due, no
        transaction then running finished."""
        return (self.newest == later.newest and self.in_flight <= later.in_flight
                and (self.next_due is None or at < self.next_due))


def mark(session: Session, now: datetime) -> Mark:
    """The mark of the session's snapshot (on PostgreSQL call it inside the read's
    REPEATABLE READ transaction, db.snapshot_scope, so it describes what the read sees)."""
    newest = [select(func.max(c)).scalar_subquery()
              for c in (col(Event.id), col(Message.id), col(TicketStep.id), col(Review.id))]
    due = select(func.min(TicketTimer.due_at)).where(TicketTimer.due_at > now) \
        .scalar_subquery()
    postgresql = session.get_bind().dialect.name == "postgresql"
    snapshot = [literal_column("pg_current_snapshot()::text"), literal_column(_ELSEWHERE)] \
        if postgresql else []
    row = session.execute(select(*newest, due, *snapshot)).one()
    return Mark(tuple(int(n or 0) for n in row[:4]), row[4],
                _in_flight(row[5], row[6]) if postgresql else frozenset())


# the transactions of other databases of the server: they cannot change this one's
# tickets, and a server shared with busy databases would otherwise make every mark stale
_ELSEWHERE = ("(SELECT string_agg(backend_xid::text, ',') FROM pg_stat_activity "
              "WHERE backend_xid IS NOT NULL AND datname <> current_database())")


def _in_flight(snapshot: str, elsewhere: str | None) -> frozenset[int]:
    """The running transactions of a pg_snapshot's text form (xmin:xmax:xip,xip,...),
    as 32-bit xids, but for those known to run in another database (pg_stat_activity
    names a backend's database; one it does not show stays in)."""
    running = {int(x) % 2**32 for x in snapshot.split(":")[2].split(",") if x}
    return frozenset(running - {int(x) for x in (elsewhere or "").split(",") if x})
