"""The dashboard, GET /desk/dashboard?days=7|30|90: what `helpdesk stats` reports, as
charts for people who would rather look than read.

The figures are helpdesk.report.stats' own (compute, breaches, satisfaction), for the
same window `helpdesk stats --since` takes, so the page and the command never disagree;
only the split over time is added here: SLA breaches and satisfaction per day (per week
over 90 days), with the same functions over each slice. Charts are inline SVG from
web/svg.py; every chart has a table with the same figures. The page is for leads and
admins: it counts every queue and names every agent, and agents see only their teams'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from helpdesk import clock
from helpdesk.report import stats
from helpdesk.store.db import snapshot_scope
from helpdesk.store.models import Survey
from helpdesk.web import auth, pages, svg

RANGES = (7, 30, 90)
DEFAULT_DAYS = 7  # as `helpdesk stats` without --since


@dataclass(frozen=True)
class Slice:
    start: datetime
    end: datetime
    breaches: int
    satisfaction: dict[str, Any]  # stats.satisfaction of the ratings given in the slice

    @property
    def label(self) -> str:
        return self.start.strftime("%b %d")


def slices(now: datetime, days: int) -> list[tuple[datetime, datetime]]:
    """[start, end) spans from now - days to now: days, or weeks for a long range (90
    columns would be too thin to read); the last one may be shorter."""
    step = timedelta(days=1 if days <= 31 else 7)
    start, out = now - timedelta(days=days), []
    while start < now:
        out.append((start, min(start + step, now)))
        start += step
    return out


def figures(session: Session, now: datetime, days: int) -> dict[str, Any]:
    """stats.compute for the window, and the breaches and ratings of each slice of it."""
    since = now - timedelta(days=days)
    data = stats.compute(session, now, since)
    # the ratings compute counted (rated since `since`), shared out by when they came
    rated = list(session.exec(select(Survey).where(col(Survey.rated_at) >= since)).all())
    data["slices"] = [
        Slice(start, end, stats.breaches(session, start, end)[0]["total"],
              stats.satisfaction([r for r in rated if r.rated_at and start <= r.rated_at < end]))
        for start, end in slices(now, days)]
    return data


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def percent(value: float) -> str:
    return f"{value:.0f}%"


def _ages(by_age: dict[str, int]) -> list[svg.Row]:
    return [(label, by_age.get(label, 0)) for _, label in stats.AGE_BUCKETS]


def _sorted(counts: dict[str, int]) -> list[svg.Row]:
    return [(k, v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def charts(data: dict[str, Any]) -> dict[str, Markup]:
    backlog, cuts = data["backlog"], data["slices"]
    times = [(f"{name} {which}", data[key][f"{which}_s"])
             for key, name in (("first_response", "First response"), ("resolution", "Resolution"))
             for which in ("median", "p90")]
    return {
        "by_queue": svg.hbars("Open tickets by queue", _sorted(backlog["by_queue"])),
        "by_age": svg.hbars("Open tickets by age", _ages(backlog["by_age"])),
        "by_status": svg.hbars("Open tickets by status", _sorted(backlog["by_status"])),
        "by_priority": svg.hbars("Open tickets by priority", _sorted(backlog["by_priority"])),
        "times": svg.hbars("Response and resolution times (hours)", times, hours),
        "breaches": svg.columns("SLA breaches over time", [(c.label, c.breaches) for c in cuts],
                                empty="No SLA breaches in this range"),
        "csat": svg.columns("Share of good ratings over time",
                            [(c.label, None if c.satisfaction["good_share"] is None
                              else c.satisfaction["good_share"] * 100) for c in cuts],
                            percent, top_value=100, empty="No ratings in this range"),
    }


def _days(request: Request) -> int:
    wanted = request.query_params.get("days", "")
    return int(wanted) if wanted in {str(d) for d in RANGES} else DEFAULT_DAYS


def _read(request: Request, days: int) -> dict[str, Any]:
    with snapshot_scope(auth.ctx(request).engine) as session:
        return figures(session, clock.now(), days)


@auth.signed_in("lead")
async def dashboard(request: Request, who: auth.SignedIn) -> Response:
    days = _days(request)
    data = await run_in_threadpool(_read, request, days)
    return pages.page(request, "dashboard", {
        "days": days, "ranges": RANGES, "data": data, "charts": charts(data),
        "ages": [label for _, label in stats.AGE_BUCKETS], "hours": hours,
        "since": datetime.fromisoformat(data["since"]),
    })


ROUTES = [Route("/dashboard", dashboard, methods=["GET"])]
