"""Time agents spent on tickets (#time, store.ops_models.TimeEntry): totals per ticket,
per agent and per queue for `helpdesk stats` and the dashboard (through
report.stats.compute, so both show the same), and the rows for `--time-csv`."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from helpdesk.store.ops_models import TimeEntry


def entries(session: Session, since: datetime) -> list[TimeEntry]:
    stmt = select(TimeEntry).where(col(TimeEntry.at) >= since).order_by(
        col(TimeEntry.at), col(TimeEntry.id))
    return list(session.exec(stmt).all())


def totals(session: Session, since: datetime) -> dict[str, Any]:
    """Minutes given since `since`: in all, and by ticket (its number), agent and queue,
    largest first."""
    rows = entries(session, since)
    by_ticket: Counter[str] = Counter()
    by_agent: Counter[str] = Counter()
    by_queue: Counter[str] = Counter()
    for r in rows:
        by_ticket[str(r.ticket_id)] += r.minutes
        by_agent[r.agent] += r.minutes
        by_queue[r.queue] += r.minutes
    return {"total_minutes": sum(r.minutes for r in rows), "entries": len(rows),
            "by_ticket": dict(by_ticket.most_common()),
            "by_agent": dict(by_agent.most_common()),
            "by_queue": dict(by_queue.most_common())}


def as_csv(session: Session, since: datetime, prefix: str) -> str:
    """One line per entry: when, ticket, queue, agent, minutes (a header first)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["at", "ticket", "queue", "agent", "minutes"])
    for r in entries(session, since):
        writer.writerow([r.at.isoformat(), f"{prefix}-{r.ticket_id}", r.queue, r.agent,
                         r.minutes])
    return out.getvalue()


def minutes_text(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"{hours}h{rest:02d}m" if hours else f"{rest}m"
