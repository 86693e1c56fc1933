"""`helpdesk api`: tokens of the JSON API, the webhooks' delivery log, the OpenAPI document.

    helpdesk api token create --agent alice --scope write [--name crm]
    helpdesk api token list [--all]
    helpdesk api token revoke ID
    helpdesk api hooks log [--hook NAME] [--status dead] [--limit N]
    helpdesk api hooks retry ID... | --all-dead [--hook NAME]
    helpdesk api openapi [--markdown]

A token is printed once, at creation; only its hash is kept. It acts as its agent (an
integration's token names the agent it works as), with that agent's queues and role.
"""

from __future__ import annotations

import json

import click

from helpdesk.commands import CliState, echo, pass_state, report_requeued
from helpdesk.commands.act import _directory
from helpdesk.commands.core import _read_engine, _write_engine
from helpdesk.store.db import session_scope
from helpdesk.web.api import tokens


@click.group(name="api")
def api_group() -> None:
    """The JSON API: tokens, webhook deliveries, the OpenAPI document."""


@api_group.group(name="token")
def token_group() -> None:
    """Create, list and revoke API tokens."""


@token_group.command(name="create")
@click.option("--agent", "agent_name", required=True, help="The agent the token acts as.")
@click.option("--scope", type=click.Choice(tokens.SCOPES), default="read", show_default=True)
@click.option("--name", default="", help="What uses it (an integration's name).")
@pass_state
def create(state: CliState, agent_name: str, scope: str, name: str) -> None:
    """Make a token and print it (once: only its hash is kept)."""
    agent = _directory(state.settings).agent(agent_name)
    if agent is None:
        raise click.ClickException(f"no agent named {agent_name!r} in agents.toml")
    with session_scope(_write_engine(state.settings)) as session:
        made = tokens.create(session, agent.name, scope, name[:100])
    click.echo(made.token)
    click.echo(f"(token {made.row_id}, {scope}, acting as {agent.name}; shown only now)",
               err=True)


@token_group.command(name="list")
@click.option("--all", "everything", is_flag=True, help="Include revoked tokens.")
@pass_state
def list_tokens(state: CliState, everything: bool) -> None:
    """The tokens: id, scope, agent, name, created (the secret itself is not kept)."""
    with session_scope(_read_engine(state.settings)) as session:
        rows = tokens.listed(session, everything)
    for row in rows:
        revoked = f"  revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else ""
        echo(f"{row.id}\t{row.scope}\t{row.agent}\t{row.name}\t{row.hint}...\t"
             f"{row.created_at:%Y-%m-%d %H:%M}{revoked}")


@token_group.command(name="revoke")
@click.argument("token_id", type=int)
@pass_state
def revoke(state: CliState, token_id: int) -> None:
    """Revoke token ID at once (requests with it get 401)."""
    with session_scope(_write_engine(state.settings)) as session:
        done = tokens.revoke(session, token_id)
    if not done:
        raise click.ClickException(f"no live token {token_id} (`helpdesk api token list`)")
    click.echo(f"token {token_id} revoked")


@api_group.group(name="hooks")
def hooks_group() -> None:
    """Webhook deliveries."""


@hooks_group.command(name="log")
@click.option("--hook", default=None, help="Only this hook's deliveries.")
@click.option("--status", type=click.Choice(("queued", "sending", "sent", "dead")),
              default=None, help="Only deliveries in this state (dead: given up).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@pass_state
def hooks_log(state: CliState, hook: str | None, status: str | None, limit: int) -> None:
    """The newest deliveries: id, hook, event, ticket, status, tries, last answer."""
    from helpdesk.outgoing.hooks import log_of

    with session_scope(_read_engine(state.settings)) as session:
        rows = log_of(session, hook, limit, status)
    for d, e in rows:
        answer = d.last_error or (f"HTTP {d.last_status}" if d.last_status else "")
        echo(f"{d.id}\t{d.hook}\t{e.kind}\tticket {e.ticket_id}\t{d.status}\t"
             f"{d.attempts} tries\t{answer}")


@hooks_group.command(name="retry")
@click.argument("delivery_ids", nargs=-1, type=int)
@click.option("--all-dead", is_flag=True, help="Every given-up delivery (of --hook).")
@click.option("--hook", default=None, help="With --all-dead: only this hook's.")
@pass_state
def hooks_retry(state: CliState, delivery_ids: tuple[int, ...], all_dead: bool,
                hook: str | None) -> None:
    """Post given-up (dead) deliveries again, once the receiver is back: one more try each."""
    from helpdesk.outgoing.hooks import send_again

    if bool(delivery_ids) == all_dead:
        raise click.UsageError("name the deliveries to post again, or give --all-dead")
    with session_scope(_write_engine(state.settings)) as session:
        queued = send_again(session, None if all_dead else delivery_ids, hook)
    report_requeued(delivery_ids, queued, "no given-up delivery")


@api_group.command(name="openapi")
@click.option("--markdown", is_flag=True, help="The reference section of docs/api.md.")
def openapi_command(markdown: bool) -> None:
    """Print the OpenAPI document the daemon serves at /api/v1/openapi.json."""
    from helpdesk.web.api import openapi

    click.echo(openapi.markdown() if markdown else json.dumps(openapi.document(), indent=2),
               nl=not markdown)


COMMANDS = [api_group]
