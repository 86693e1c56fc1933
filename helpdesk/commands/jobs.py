"""`helpdesk jobs`: run the scheduled work now (or as of a given moment), list timers."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from sqlmodel import col, select

from helpdesk import clock, logs
from helpdesk.commands import CliState, pass_state
from helpdesk.commands.core import _read_engine, _write_engine
from helpdesk.store.db import session_scope
from helpdesk.store.models import TicketTimer


def parse_moment(text: str | None) -> datetime:
    """ISO time; naive means UTC; none means now."""
    if not text:
        return clock.now()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO time like 2026-12-01T09:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.group(name="jobs")
def jobs_group() -> None:
    """Scheduled work: SLA warnings and escalation, stale tickets, surveys."""


@jobs_group.command(name="run-due")
@click.option("--now", "now_text", default=None,
              help="Run what is due at this ISO time (naive = UTC) instead of now.")
@pass_state
def run_due(state: CliState, now_text: str | None) -> None:
    """Run everything due now (or at --now) once, and print what was done.

    Safe beside a running daemon: every step is recorded once per ticket, so a
    step the daemon already did is skipped here and vice versa. A --now still to
    come is a simulation: it prints what would be done then and changes nothing.
    """
    from helpdesk.schedule import sweep as jobs

    settings = state.settings
    logs.setup(settings)
    now = parse_moment(now_text)
    simulated = now > clock.now()
    clock.freeze(now)  # every write of this pass carries the chosen moment
    report = jobs.run_pass(settings, _write_engine(settings), now, simulated=simulated)
    for line in report.lines():
        click.echo(line)


@jobs_group.command(name="timers")
@click.option("--limit", default=50, show_default=True)
@pass_state
def timers(state: CliState, limit: int) -> None:
    """The next scheduled step of each ticket, soonest first."""
    settings = state.settings
    prefix = settings.helpdesk.ticket_prefix
    with session_scope(_read_engine(settings)) as session:
        rows = session.exec(select(TicketTimer).order_by(col(TicketTimer.due_at))
                            .limit(limit)).all()
        for row in rows:
            click.echo(f"{prefix}-{row.ticket_id:<8} {row.due_at.isoformat()}  {row.key}")


COMMANDS = [jobs_group]
