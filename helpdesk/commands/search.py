"""`helpdesk search QUERY`: full text over subjects, bodies, notes, addresses and
attachment names (helpdesk.store.search), the web desk's search from the shell."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from helpdesk.commands import CliState, echo, pass_state
from helpdesk.commands.core import _read_engine
from helpdesk.store import search as index
from helpdesk.store.db import snapshot_scope
from helpdesk.store.models import Status


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date like 2026-11-30") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command(name="search")
@click.argument("query")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice([s.value for s in Status]), help="Only tickets in this status.")
@click.option("--queue", "queues", multiple=True, help="Only this queue's tickets.")
@click.option("--assignee", "assignees", multiple=True, help="Only this agent's tickets.")
@click.option("--customer", default="",
              help="Only tickets whose customer's address contains this (any case).")
@click.option("--since", default=None, help="Only messages that arrived on or after this date.")
@click.option("--until", default=None, help="Only messages that arrived before this date.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True)
@pass_state
def search(state: CliState, query: str, statuses: tuple[str, ...], queues: tuple[str, ...],
           assignees: tuple[str, ...], customer: str, since: str | None, until: str | None,
           limit: int, as_json: bool) -> None:
    """Messages matching QUERY, best first: words must all appear, "a phrase" in order,
    word* as a prefix; anything else in QUERY only separates words."""
    settings = state.settings
    prefix = settings.helpdesk.ticket_prefix
    filters = index.Filters(statuses=statuses, queues=queues, assignees=assignees,
                            customer=customer, since=_date(since), until=_date(until))
    with snapshot_scope(_read_engine(settings)) as session:
        hits = index.search(session, query, filters, limit=limit)
    if as_json:
        click.echo(json.dumps([_as_dict(h, prefix) for h in hits], indent=2, ensure_ascii=False))
        return
    for h in hits:
        flag = " (internal)" if h.internal else ""
        echo(f"{prefix}-{h.ticket_id}  message {h.message_id}{flag}  {h.subject}")
        echo(f"    {h.snippet_text()}")
    if not hits:
        click.echo("no matches", err=True)


def _as_dict(h: index.Hit, prefix: str) -> dict[str, object]:
    return {"ticket": f"{prefix}-{h.ticket_id}", "message": h.message_id, "rank": h.rank,
            "subject": h.subject, "internal": h.internal, "direction": h.direction,
            "at": h.at.isoformat(),
            "snippet": [{"text": s.text, "match": s.match} for s in h.snippet]}


COMMANDS = [search]
