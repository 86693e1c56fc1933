"""`helpdesk tickets new`: open a ticket from the shell (scripts, monitoring alerts).

Internal (no --customer): made at once, in one transaction, with the agent of `--as` as
its reporter; prints the ticket's id. With --customer ADDR: the request is spooled as
that customer's mail (agents/new_ticket.py), so rules, dedupe and the acknowledgement
apply when the daemon takes it; prints the spool entry. Either way the fields given
win over the rules (applied as the agent's #commands, recorded under their name).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from helpdesk.agents import new_ticket
from helpdesk.commands import CliState, pass_state
from helpdesk.commands.act import _AS, _directory
from helpdesk.commands.core import _write_engine
from helpdesk.errors import HelpdeskError, TemporaryError
from helpdesk.store.db import session_scope


class _Refused(HelpdeskError):
    """The ticket cannot be opened as asked; the message says why."""


@click.command(name="new")
@click.option("--subject", required=True, help="The ticket's subject.")
@click.option("--customer", default="", metavar="ADDR",
              help="On behalf of this customer (acknowledged to them); without: internal.")
@click.option("--customer-name", default="", help="The customer's name.")
@click.option("--no-ack", is_flag=True, help="With --customer: send no acknowledgement.")
@click.option("--queue", default="", help="The queue (default: rules, else the default).")
@click.option("--priority", default="", help="The priority.")
@click.option("--category", default="", help="The category.")
@click.option("--assign", default="", metavar="NAME", help="The assignee.")
@click.option("--file", "path", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              default=None, help="The first message; without it, read from stdin.")
@_AS
@pass_state
def new(state: CliState, subject: str, customer: str, customer_name: str, no_ack: bool,
        queue: str, priority: str, category: str, assign: str, path: Path | None,
        acting: str) -> None:
    """Open a ticket: internal, or for a customer with --customer."""
    settings = state.settings
    directory = _directory(settings)
    agent = directory.agent(acting) or directory.by_address(acting)
    if agent is None:
        raise click.ClickException(f"--as {acting}: not an agent in agents.toml")
    text = (path.read_text(errors="replace") if path else sys.stdin.read()).strip()
    if not subject.strip() or not text:
        raise click.ClickException("the subject and the text must not be empty")
    fields = new_ticket.Fields(queue, category, priority, assign)
    if customer:
        refused = new_ticket.refuse_customer(settings, directory, customer.lower())
        if refused:
            raise click.ClickException(f"--customer {customer}: {refused}")
        name = new_ticket.spool_for_customer(
            settings, agent, customer=customer.lower(), name=customer_name, subject=subject,
            text=text, attachments=(), fields=fields, ack=not no_ack, route=f"cli:{agent.name}")
        click.echo(f"spooled as {name} (the daemon makes the ticket)")
        return
    raw, _ = new_ticket.request_mail(settings, from_name=agent.shown_name,
                                     from_addr=agent.email, subject=subject, text=text,
                                     made_by=("X-Helpdesk-Opened-By", f"{agent.name} (cli)"))
    try:
        with session_scope(_write_engine(settings)) as session:
            ticket, _, errors = new_ticket.open_internal(
                session, settings, directory, agent, raw, route="cli", fields=fields,
                how="on the command line")
            if errors:
                raise _Refused("refused, nothing made:\n  " + "\n  ".join(errors))
            number = ticket.id
    except (_Refused, TemporaryError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{settings.helpdesk.ticket_prefix}-{number}")


COMMANDS = [new]
