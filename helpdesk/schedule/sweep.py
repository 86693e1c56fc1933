"""The scheduler pass: every step that is due gets done once, and nothing else is read.

A pass looks only at
  1. tickets changed since the last pass (ticket.updated_at index, a watermark kept
     in scheduler_state, minus a slack for transactions that committed late), and
  2. tickets whose next step is due (ticket_timer.due_at index).
For each it plans the steps (SLA warning/breach, stale reminder/resolve/close,
survey), does the due ones whose TicketStep mark is missing, and stores when the
ticket next needs a look. Each ticket is its own transaction; the mark's unique
key makes a concurrent second runner fail and retry, finding the step done.
Then what is past keeping is dropped (retention.py), from watermarks of its own.

When the configuration that moves due times changes (fingerprint), the first pass
looks at every ticket that can still have a step.

A simulated pass (a moment still to come, `jobs run-due --now`) does the same work,
then rolls each ticket back and keeps the watermark. Were it written, its step
marks, the tickets' updated_at, the watermark and the outbox rows would carry that
moment: the live scheduler would skip what changes in the meantime and hold the
mail until then.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from helpdesk.config.agents import Directory
from helpdesk.config.settings import Settings
from helpdesk.schedule import escalation, retention, stale
from helpdesk.schedule.runtime import Runtime, Step, marks
from helpdesk.store.db import session_scope
from helpdesk.store.models import Ticket, TicketStep, TicketTimer
from helpdesk.store.scheduler_state import set_state, state
from helpdesk.survey import steps as survey

log = logging.getLogger("helpdesk.schedule.sweep")
# transactions that began before the last pass may commit after it
SLACK = timedelta(minutes=10)
BATCH = 500
ACTIONS: dict[str, Callable[[Runtime, Session, Ticket, Step], str]] = {
    **escalation.ACTIONS, **stale.ACTIONS, **survey.ACTIONS}


@dataclass
class PassReport:
    now: datetime
    looked_at: int = 0
    done: list[str] = field(default_factory=list)
    seconds: float = 0.0
    full: bool = False
    simulated: bool = False

    def lines(self) -> list[str]:
        kind = "simulated pass (nothing written or sent)" if self.simulated else "pass"
        head = (f"{kind} at {self.now.isoformat()}: looked at {self.looked_at} tickets"
                f"{' (full rescan)' if self.full else ''}, {len(self.done)} steps done "
                f"in {self.seconds * 1000:.0f} ms")
        return [head, *self.done]


def plan(rt: Runtime, session: Session, ticket: Ticket) -> list[Step]:
    done = marks(session, ticket.id or 0)
    steps = [*escalation.plan(rt, session, ticket, set(done)),
             *stale.plan(rt, session, ticket, done),
             *survey.plan(rt, session, ticket)]
    return sorted((s for s in steps if s.key not in done), key=lambda s: s.due_at)


def sync_ticket(rt: Runtime, session: Session, ticket: Ticket) -> list[str]:
    """Do the ticket's due steps, then store when it next needs a look."""
    done: list[str] = []
    for _ in range(10):  # a step can make others due (a breach raises the priority)
        steps = plan(rt, session, ticket)
        due = [s for s in steps if s.due_at <= rt.now]
        if not due:
            break
        step = due[0]
        session.add(TicketStep(ticket_id=ticket.id, key=step.key, at=rt.now))
        session.flush()  # a concurrent runner's mark makes this raise IntegrityError
        what = ACTIONS[step.action](rt, session, ticket, step)
        done.append(f"{rt.public_id(ticket)} {step.key}: {what}")
    upcoming = [s for s in steps if s.due_at > rt.now]
    _set_timer(session, ticket.id or 0, upcoming[0] if upcoming else None)
    return done


def _set_timer(session: Session, ticket_id: int, step: Step | None) -> None:
    timer = session.get(TicketTimer, ticket_id)
    if step is None:
        if timer is not None:
            session.delete(timer)
        return
    if timer is None:
        session.add(TicketTimer(ticket_id=ticket_id, due_at=step.due_at, key=step.key))
    else:
        timer.due_at, timer.key = step.due_at, step.key


def sync_one(rt: Runtime, ticket_id: int) -> tuple[list[str], datetime | None]:
    """One ticket in its own transaction; a lost race on a mark is retried (then skipped).
    Returns what was done and the ticket's updated_at afterwards."""
    for attempt in range(3):
        try:
            with session_scope(rt.engine) as session:
                ticket = session.get(Ticket, ticket_id)
                if ticket is None:
                    session.execute(delete(TicketTimer).where(
                        col(TicketTimer.ticket_id) == ticket_id))
                    return [], None
                done, updated_at = sync_ticket(rt, session, ticket), ticket.updated_at
                if rt.simulated:
                    session.rollback()
                return done, updated_at
        except IntegrityError:
            log.info("ticket %s: another runner did a step first (attempt %d)", ticket_id,
                     attempt + 1)
    return [], None


# -- the pass ----------------------------------------------------------------------------

def changed_since(session: Session, since: datetime | None,
                  rt: Runtime) -> tuple[list[tuple[int, datetime]], datetime | None]:
    """Tickets changed after `since` (None: every ticket that can still have a step)."""
    stmt = select(Ticket.id, Ticket.updated_at)
    if since is not None:
        stmt = stmt.where(col(Ticket.updated_at) > since - SLACK)
    else:
        recent = rt.now - rt.settings.survey.delay - rt.settings.survey.lookback
        stmt = stmt.where(or_(col(Ticket.status) != "closed", col(Ticket.updated_at) >= recent))
    rows = session.exec(stmt).all()
    newest = max((at for _, at in rows), default=since)
    return [(int(i), at) for i, at in rows if i is not None], newest


def due_ticket_ids(session: Session, now: datetime, skip: set[int]) -> list[int]:
    stmt = (select(TicketTimer.ticket_id).where(col(TicketTimer.due_at) <= now)
            .order_by(col(TicketTimer.due_at)).limit(BATCH + len(skip)))
    return [t for t in session.exec(stmt).all() if t not in skip][:BATCH]


def run_pass(settings: Settings, engine: Engine, now: datetime,
             on_outbox: Callable[[], None] | None = None,
             synced: dict[int, datetime] | None = None, *,
             simulated: bool = False, directory: Directory | None = None) -> PassReport:
    """One pass at `now` (`simulated`: report what it would do, write nothing). `synced`
    (kept by a long-running caller) remembers the updated_at each ticket had when last
    synced, so the slack window does not make every pass redo the tickets changed in
    the last minutes. `directory`: the agents in force (the daemon's); None reads
    agents.toml."""
    synced = {} if synced is None else synced
    started = time.perf_counter()
    rt = Runtime.build(settings, engine, now, on_outbox, simulated=simulated,
                       directory=directory)
    report = PassReport(now, simulated=simulated)
    fingerprint = rt.sla.fingerprint()
    with session_scope(engine) as session:
        mark_text = state(session, "watermark")
        full = state(session, "config") != fingerprint or not mark_text
        since = None if full else datetime.fromisoformat(mark_text)
        rows, newest = changed_since(session, since, rt)
    report.full = full
    if full:
        synced.clear()
    changed = [i for i, at in rows if synced.get(i) != at]
    seen = _sync_all(rt, changed, report, synced)
    while True:  # due timers, in batches, until none is left at `now`
        with session_scope(engine) as session:
            batch = due_ticket_ids(session, now, seen)
        if not batch:
            break
        seen |= _sync_all(rt, batch, report, synced)
    if simulated:
        report.seconds = time.perf_counter() - started
        return report
    try:
        with session_scope(engine) as session:
            if newest is not None:
                set_state(session, "watermark", newest.isoformat())
            set_state(session, "config", fingerprint)
    except IntegrityError:
        pass  # another runner's first pass wrote the same state at the same moment
    try:
        report.done.extend(retention.prune(settings, engine, now))
    except Exception:  # the steps above are done; what is past keeping waits a pass
        log.exception("scheduler: dropping what is past keeping failed")
    if newest is not None:
        for i in [i for i, at in synced.items() if at <= newest - SLACK]:
            del synced[i]  # out of the slack window: the watermark covers it now
    if report.done and on_outbox:
        on_outbox()
    report.seconds = time.perf_counter() - started
    return report


def _sync_all(rt: Runtime, ids: Iterable[int], report: PassReport,
              synced: dict[int, datetime]) -> set[int]:
    seen = set()
    for ticket_id in ids:
        seen.add(ticket_id)
        report.looked_at += 1
        try:
            done, updated_at = sync_one(rt, ticket_id)
            report.done.extend(done)
            if updated_at is not None:
                synced[ticket_id] = updated_at
        except Exception:
            # one broken ticket must not stop the others; it is tried again next pass
            log.exception("scheduler: ticket %s failed", ticket_id)
    return seen
