"""SLA clocks: when a ticket's first response, next response and resolution fall due.

Due times are derived, never stored as truth: from the ticket's status-change
history (time in pending, resolved or closed does not count), its messages
(first response, the customer waiting for the next one) and the business hours
of its queue (none configured: around the clock). The scheduler stores only the
next moment a ticket needs a look (TicketTimer).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from helpdesk.config.schedule import SlaPolicy
from helpdesk.config.settings import Settings
from helpdesk.hours import BusinessHours, add_business_time, business_time, parse_hours
from helpdesk.store.models import Event, Message, Ticket

# statuses in which the SLA clock runs; the others pause it
COUNTING = frozenset({"new", "open"})
LABELS = {"first_response": "first response", "next_response": "next response",
          "resolution": "resolution"}

Interval = tuple[datetime, datetime | None]

# TicketStep key of one step ("warn", "breach") of one clock cycle: unique per ticket,
# so the scheduler runs each step once, and breaches are counted by it afterwards.
_STEP_KEY = "sla:{kind}:{cycle}:{step}"
# SQL LIKE pattern matching the key of every breach (stats, metrics, `tickets show`)
BREACH_KEYS = _STEP_KEY.format(kind="%", cycle="%", step="breach")


@dataclass(frozen=True)
class SlaClock:
    kind: str
    cycle: str  # "0"; for next_response the id of the customer message waiting for an answer
    target: timedelta
    started_at: datetime
    due_at: datetime | None  # None: paused before reaching the target
    warn_at: datetime | None
    met_at: datetime | None

    def breached(self, now: datetime) -> bool:
        return self.due_at is not None and self.due_at <= (self.met_at or now)

    @property
    def paused(self) -> bool:
        return self.due_at is None and self.met_at is None


def step_key(clock: SlaClock, step: str) -> str:
    return _STEP_KEY.format(kind=clock.kind, cycle=clock.cycle, step=step)


def step_pattern(kind: str = "%", step: str = "%") -> str:
    """SQL LIKE pattern of the step keys of `kind` and `step`, any cycle (the desk's
    overdue and at-risk views)."""
    return _STEP_KEY.format(kind=kind, cycle="%", step=step)


def step_kind(key: str) -> str:
    """The clock kind (first_response, ...) a step key was written for."""
    return key.split(":")[1]


class SlaContext:
    """Policies and business hours of one Settings, parsed once per pass."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.default_hours = (parse_hours(settings.business_hours)
                              if settings.business_hours else None)
        self.queue_hours = {name: parse_hours(q.business_hours)
                            for name, q in settings.queue.items() if q.business_hours}
        self.warn_share = settings.escalation.warn_at

    def hours_for(self, queue: str) -> BusinessHours | None:
        return self.queue_hours.get(queue, self.default_hours)

    def policy_for(self, ticket: Ticket) -> SlaPolicy | None:
        base = self.settings.sla.get(ticket.priority)
        queue = self.settings.queue.get(ticket.queue)
        override = (queue.sla or {}).get(ticket.priority) if queue else None
        if base is None:
            return override
        return base.merged(override)

    def fingerprint(self) -> str:
        """Changes when anything that moves due times changes: then every open ticket
        is looked at again."""
        s = self.settings
        parts = [s.sla, s.business_hours, {n: (q.sla, q.business_hours) for n, q in
                 s.queue.items()}, s.escalation, s.stale, s.survey.enabled, s.survey.delay,
                 s.web_form.unconfirmed_close]
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def active_intervals(created_at: datetime, initial: str,
                     changes: list[tuple[datetime, str]]) -> list[Interval]:
    """Spans in which the ticket's status counted for the SLA; the last may be open."""
    spans: list[Interval] = []
    since: datetime | None = created_at if initial in COUNTING else None
    for at, new in changes:
        if new in COUNTING and since is None:
            since = at
        elif new not in COUNTING and since is not None:
            spans.append((since, at))
            since = None
    if since is not None:
        spans.append((since, None))
    return spans


def clip(intervals: list[Interval], start: datetime) -> list[Interval]:
    out: list[Interval] = []
    for a, b in intervals:
        if b is not None and b <= start:
            continue
        out.append((max(a, start), b))
    return out


def moment_reaching(intervals: list[Interval], hours: BusinessHours | None,
                    amount: timedelta) -> datetime | None:
    """When counted time reaches `amount`; None if the clock pauses before that."""
    remaining = amount
    for a, b in intervals:
        if b is not None:
            got = business_time(hours, a, b)
            if got < remaining:
                remaining -= got
                continue
        return add_business_time(hours, a, remaining)
    return None


def status_changes(session: Session, ticket_id: int) -> list[tuple[datetime, str, str]]:
    stmt = (select(Event.at, Event.old, Event.new)
            .where(Event.ticket_id == ticket_id, Event.kind == "change", Event.field == "status")
            .order_by(col(Event.at), col(Event.id)))
    return [(at, old, new) for at, old, new in session.exec(stmt).all()]


def message_times(session: Session, ticket_id: int) -> list[tuple[int, str, datetime]]:
    """(id, direction, created_at) of the conversation, internal notes left out."""
    stmt = (select(Message.id, Message.direction, Message.created_at)
            .where(Message.ticket_id == ticket_id, col(Message.internal).is_(False))
            .order_by(col(Message.id)))
    return [(int(i), d, at) for i, d, at in session.exec(stmt).all()]  # type: ignore[arg-type]


def clocks(session: Session, ctx: SlaContext, ticket: Ticket) -> list[SlaClock]:
    """The ticket's SLA clocks under the policy for its priority and queue."""
    if ctx.policy_for(ticket) is None or ticket.id is None or ticket.unconfirmed:
        return []
    return clocks_from(ctx, ticket, status_changes(session, ticket.id),
                       message_times(session, ticket.id))


def clocks_from(ctx: SlaContext, ticket: Ticket, changes: list[tuple[datetime, str, str]],
                msgs: list[tuple[int, str, datetime]]) -> list[SlaClock]:
    """`clocks` from the ticket's status changes and message times, read by the caller
    (the desk reads them for a page of tickets at once)."""
    policy = ctx.policy_for(ticket)
    if policy is None or ticket.unconfirmed:  # a web request nobody confirmed yet
        return []
    initial = changes[0][1] if changes else ticket.status
    # a web form's request counts from its confirmation: we could not answer before
    opened = ticket.confirmed_at or ticket.created_at
    spans = active_intervals(opened, initial, [(at, new) for at, _, new in changes])
    hours = ctx.hours_for(ticket.queue)
    found = []
    outbound = [at for _, d, at in msgs if d == "out"]
    # an internal ticket has no customer waiting for an answer: only its resolution is timed
    if policy.first_response and not ticket.internal:
        met = ticket.first_response_at or (outbound[0] if outbound else None)
        found.append(_clock(ctx, "first_response", "0", policy.first_response,
                            opened, spans, hours, met))
    if policy.resolution:
        met = ticket.resolved_at or ticket.closed_at \
            if ticket.status in ("resolved", "closed") else None
        found.append(_clock(ctx, "resolution", "0", policy.resolution, opened,
                            spans, hours, met))
    waiting = None if ticket.internal else _waiting_since(msgs)
    if policy.next_response and waiting is not None:
        msg_id, since = waiting
        found.append(_clock(ctx, "next_response", str(msg_id), policy.next_response, since,
                            clip(spans, since), hours, None))
    return found


def _waiting_since(msgs: list[tuple[int, str, datetime]]) -> tuple[int, datetime] | None:
    """The first customer message after our latest answer, if we have answered before."""
    last_out = max((i for i, d, _ in msgs if d == "out"), default=None)
    if last_out is None:
        return None  # still waiting for the first response: that clock covers it
    after = [(i, at) for i, d, at in msgs if d == "in" and i > last_out]
    return after[0] if after else None


def _clock(ctx: SlaContext, kind: str, cycle: str, target: timedelta, started: datetime,
           spans: list[Interval], hours: BusinessHours | None,
           met: datetime | None) -> SlaClock:
    # computed over the whole history: a clock met after its due time still shows the breach
    due = moment_reaching(spans, hours, target)
    warn = moment_reaching(spans, hours, target * ctx.warn_share) if ctx.warn_share else None
    return SlaClock(kind, cycle, target, started, due, warn, met)


def describe(session: Session, settings: Settings, ticket: Ticket,
             now: datetime) -> list[dict[str, object]]:
    """The ticket's SLA clocks for `tickets show`: due time, met, paused, breached.

    Breached also when the scheduler recorded a breach (a clock that was reset since,
    like a next response that has been answered, keeps its history)."""
    from helpdesk.store.models import TicketStep

    recorded = set(session.exec(select(TicketStep.key).where(
        TicketStep.ticket_id == ticket.id, col(TicketStep.key).like(BREACH_KEYS))).all())
    return [{"kind": c.kind, "label": LABELS[c.kind], "target_s": c.target.total_seconds(),
             "due": c.due_at.isoformat() if c.due_at else None,
             "met": c.met_at.isoformat() if c.met_at else None, "paused": c.paused,
             "breached": c.breached(now) or step_key(c, "breach") in recorded}
            for c in clocks(session, SlaContext(settings), ticket)]
