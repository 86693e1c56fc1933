"""The Monday-morning figures: backlog, response and resolution times, SLA breaches,
satisfaction, per agent. Pure reads; times in seconds.

Medians are the usual middle value; p90 is the nearest-rank 90th percentile (the
smallest value with at least 90% of the values at or below it), so it is always
a time some ticket actually took.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlmodel import Session, col, select

from helpdesk.report import time_spent
from helpdesk.schedule import sla
from helpdesk.store import queries
from helpdesk.store.models import Survey, Ticket, TicketStep

BACKLOG = ("new", "open", "pending")
AGE_BUCKETS = ((timedelta(days=1), "<1d"), (timedelta(days=3), "1-3d"),
               (timedelta(days=7), "3-7d"), (timedelta.max, ">7d"))


def p90(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, Any]:
    return {"count": len(values),
            "median_s": statistics.median(values) if values else None,
            "p90_s": p90(values)}


def _age(delta: timedelta) -> str:
    return next(label for limit, label in AGE_BUCKETS if delta < limit)


def backlog(session: Session, now: datetime) -> dict[str, Any]:
    rows = session.exec(select(Ticket.status, Ticket.queue, Ticket.priority, Ticket.created_at)
                        .where(col(Ticket.status).in_(BACKLOG))).all()
    return {"total": len(rows),
            "by_status": dict(Counter(r[0] for r in rows)),
            "by_queue": dict(Counter(r[1] for r in rows)),
            "by_priority": dict(Counter(r[2] for r in rows)),
            "by_age": dict(Counter(_age(now - r[3]) for r in rows))}


class Durations(NamedTuple):
    """One ticket's times and whose work they were (the credited agent, else the
    assignee: tickets from before credits were recorded, or resolved by the scheduler)."""

    responder: str
    first_response: float | None
    resolver: str
    resolution: float | None


def _durations(session: Session, since: datetime) -> list[Durations]:
    """The durations of tickets created since `since`, in seconds."""
    created = col(Ticket.created_at) >= since
    rows = session.exec(select(Ticket.id, Ticket.assignee, Ticket.created_at,
                               Ticket.first_response_at, Ticket.resolved_at, Ticket.closed_at)
                        .where(created)).all()
    ids = select(Ticket.id).where(created)
    responders = queries.credited(session, "first_response", ids)
    resolvers = queries.credited(session, "resolution", ids)
    out = []
    for tid, assignee, created, first, resolved, closed in rows:
        done = resolved or closed
        out.append(Durations(responders.get(tid or 0, assignee),
                             (first - created).total_seconds() if first else None,
                             resolvers.get(tid or 0, assignee),
                             (done - created).total_seconds() if done else None))
    return out


def breaches(session: Session, since: datetime,
             until: datetime | None = None) -> tuple[dict[str, Any], Counter[str]]:
    """SLA breaches recorded since `since` (and before `until`: the desk's chart over time)."""
    rows = session.exec(select(TicketStep.key, Ticket.queue, Ticket.assignee)
                        .join(Ticket, col(Ticket.id) == TicketStep.ticket_id)
                        .where(col(TicketStep.key).like(sla.BREACH_KEYS),
                               col(TicketStep.at) >= since,
                               *([col(TicketStep.at) < until] if until else []))).all()
    per_agent: Counter[str] = Counter(a for _, _, a in rows if a)
    return {"total": len(rows),
            "by_sla": dict(Counter(sla.step_kind(k) for k, _, _ in rows)),
            "by_queue": dict(Counter(q for _, q, _ in rows))}, per_agent


def satisfaction(rows: list[Survey]) -> dict[str, Any]:
    rated = [r for r in rows if r.good is not None]
    scores = [r.score for r in rated if r.scale == "1-5" and r.score is not None]
    return {"count": len(rated),
            "good_share": round(sum(1 for r in rated if r.good) / len(rated), 4) if rated
            else None,
            "mean": round(statistics.fmean(scores), 3) if scores else None}


def compute(session: Session, now: datetime, since: datetime) -> dict[str, Any]:
    durations = _durations(session, since)
    sla_breaches, breaches_by_agent = breaches(session, since)
    surveys = list(session.exec(select(Survey).where(col(Survey.rated_at) >= since)).all())
    return {
        "since": since.isoformat(), "now": now.isoformat(),
        "backlog": backlog(session, now),
        "first_response": summary([d.first_response for d in durations
                                   if d.first_response is not None]),
        "resolution": summary([d.resolution for d in durations if d.resolution is not None]),
        "sla_breaches": sla_breaches,
        "satisfaction": satisfaction(surveys),
        "agents": agents(session, durations, breaches_by_agent, surveys),
        "time": time_spent.totals(session, since),  # #time, given since `since`
    }


def agents(session: Session, durations: list[Durations],
           breaches_by_agent: Counter[str], surveys: list[Survey]) -> dict[str, Any]:
    open_counts = Counter(session.exec(
        select(Ticket.assignee).where(col(Ticket.status).in_(BACKLOG))).all())
    firsts: dict[str, list[float]] = defaultdict(list)
    resolved: Counter[str] = Counter()
    for d in durations:
        if d.first_response is not None:
            firsts[d.responder].append(d.first_response)
        if d.resolution is not None:
            resolved[d.resolver] += 1
    by_agent: dict[str, list[Survey]] = defaultdict(list)
    for row in surveys:
        by_agent[row.agent].append(row)
    names = sorted({*open_counts, *firsts, *resolved, *breaches_by_agent, *by_agent} - {""})
    return {name: {"open": open_counts.get(name, 0), "resolved": resolved.get(name, 0),
                   "first_response": summary(firsts.get(name, [])),
                   "sla_breaches": breaches_by_agent.get(name, 0),
                   "satisfaction": satisfaction(by_agent.get(name, []))}
            for name in names}
