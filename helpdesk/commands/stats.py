"""`helpdesk stats`: backlog, response times, SLA breaches, satisfaction, per agent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from helpdesk import clock
from helpdesk.commands import CliState, pass_state
from helpdesk.commands.core import _read_engine
from helpdesk.store.db import session_scope


def _since(text: str | None, now: datetime) -> datetime:
    if not text:
        return now - timedelta(days=7)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date like 2026-11-30") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command(name="stats")
@click.option("--since", "since_text", default=None,
              help="Count tickets created and ratings given since this date (default: 7 days).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--time-csv", "time_csv", is_flag=True,
              help="Print the time spent (#time) since --since as CSV: at, ticket, queue, "
                   "agent, minutes.")
@pass_state
def stats(state: CliState, since_text: str | None, as_json: bool, time_csv: bool) -> None:
    """Backlog, first-response and resolution times, SLA breaches, satisfaction, agents,
    time spent, the knowledge base."""
    from helpdesk.kb import report as kb_report
    from helpdesk.report import time_spent
    from helpdesk.report.stats import compute

    now = clock.now()
    with session_scope(_read_engine(state.settings)) as session:
        if time_csv:
            click.echo(time_spent.as_csv(session, _since(since_text, now),
                                         state.settings.helpdesk.ticket_prefix), nl=False)
            return
        data = compute(session, now, _since(since_text, now))
        data["kb"] = kb_report.figures(session, state.settings)
    data["time"]["prefix"] = state.settings.helpdesk.ticket_prefix
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    _print(data)


def _hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.1f}h"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"


def _print(d: dict[str, Any]) -> None:
    b = d["backlog"]
    click.echo(f"since {d['since']}")
    click.echo(f"backlog: {b['total']} open tickets")
    for key in ("by_status", "by_queue", "by_priority", "by_age"):
        click.echo(f"  {key[3:]:<9} {_counts(b[key])}")
    for key in ("first_response", "resolution"):
        s = d[key]
        click.echo(f"{key.replace('_', ' ')}: median {_hours(s['median_s'])}, "
                   f"p90 {_hours(s['p90_s'])} ({s['count']} tickets)")
    br = d["sla_breaches"]
    click.echo(f"SLA breaches: {br['total']} ({_counts(br['by_sla'])})")
    sat = d["satisfaction"]
    share = "-" if sat["good_share"] is None else f"{sat['good_share']:.0%}"
    click.echo(f"satisfaction: {sat['count']} ratings, {share} good, mean {sat['mean'] or '-'}")
    if "kb" in d:
        from helpdesk.kb import report as kb_report

        for line in kb_report.lines(d["kb"], per_article=True):
            click.echo(line)
    click.echo("agents:")
    for name, a in d["agents"].items():
        click.echo(f"  {name:<12} open {a['open']:<4} resolved {a['resolved']:<4} "
                   f"first response median {_hours(a['first_response']['median_s'])}  "
                   f"breaches {a['sla_breaches']}  ratings {a['satisfaction']['count']}")
    _print_time(d["time"])


def _print_time(t: dict[str, Any]) -> None:
    from helpdesk.report.time_spent import minutes_text

    click.echo(f"time spent: {minutes_text(t['total_minutes'])} in {t['entries']} entries")
    for key, label in (("by_queue", "queue"), ("by_agent", "agent"), ("by_ticket", "ticket")):
        parts = [f"{t['prefix'] + '-' + k if key == 'by_ticket' else k or '-'} "
                 f"{minutes_text(v)}" for k, v in list(t[key].items())[:20]]
        click.echo(f"  by {label:<7} {', '.join(parts) or '-'}")


COMMANDS = [stats]
