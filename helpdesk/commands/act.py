"""`helpdesk tickets assign|status|reply|note`: an agent acting on a ticket from the shell.

The same registry as a reply by mail: the commands of agent_commands go through
agent_actions.run_commands (checked with the same situation: queues, review,
lead; then applied), so a reply reaches the customer through the outbox exactly
as a mail reply does, and every change is a history event naming the agent.
`--as` must name an agent of agents.toml: the shell user is trusted as the
admin, but the history names a real agent and only agents may act, as by mail.
"""

from __future__ import annotations

import sys

import click
from sqlmodel import Session

from helpdesk.agents import actions as agent_actions
from helpdesk.agents import commands as agent_commands
from helpdesk.agents.commands import Command, Reply, command
from helpdesk.commands import CliState, pass_state
from helpdesk.commands.core import _ticket_number, _write_engine
from helpdesk.config import agents
from helpdesk.config.agents import Agent, Directory
from helpdesk.config.settings import Settings
from helpdesk.errors import ConfigError, TemporaryError
from helpdesk.store import queries
from helpdesk.store.db import session_scope

_AS = click.option("--as", "acting", required=True, metavar="AGENT",
                   help="The agent acting (name or address in agents.toml).")
_MESSAGE = click.option("-m", "--message", default=None,
                        help="The text; without it, read from stdin.")
_TIME = click.option("--time", "spent", default=None, metavar="25m|1h30m",
                     help="Time spent on the ticket, as `#time` by mail.")


@click.command(name="assign")
@click.argument("ticket_id")
@click.argument("assignee")
@_AS
@pass_state
def assign(state: CliState, ticket_id: str, assignee: str, acting: str) -> None:
    """Give a ticket to an agent (`me` for yourself), as `#assign` by mail."""
    _act(state, ticket_id, acting, Reply((command("assign", assignee),)))


@click.command(name="status")
@click.argument("ticket_id")
@click.argument("status", metavar=f"{'|'.join(agent_commands.STATUSES)}")
@_AS
@pass_state
def set_status(state: CliState, ticket_id: str, status: str, acting: str) -> None:
    """Set a ticket's status, as `#status` by mail (resolved and closed tell the customer)."""
    _act(state, ticket_id, acting, Reply((command("status", status),)))


@click.command(name="reply")
@click.argument("ticket_id")
@_AS
@_MESSAGE
@click.option("--canned", metavar="NAME", default=None,
              help="Add the canned reply NAME (replies/NAME.md), as `#reply NAME`.")
@_TIME
@pass_state
def reply(state: CliState, ticket_id: str, acting: str, message: str | None,
          canned: str | None, spent: str | None) -> None:
    """Answer the customer, as a mail reply from the agent would."""
    given = _timed((command("reply", canned),) if canned else (), spent)
    text = (message or "").strip() if canned else _text(message)
    _act(state, ticket_id, acting, Reply(given, text))


@click.command(name="note")
@click.argument("ticket_id")
@_AS
@_MESSAGE
@_TIME
@pass_state
def note(state: CliState, ticket_id: str, acting: str, message: str | None,
         spent: str | None) -> None:
    """An internal note for the agents, as `#note` by mail; never sent to the customer."""
    _act(state, ticket_id, acting, Reply(_timed((command("note", ""),), spent),
                                         _text(message)))


def _timed(given: tuple[Command, ...], spent: str | None) -> tuple[Command, ...]:
    return (*given, command("time", spent)) if spent else given


def _other(name: str, doc: str) -> click.Command:
    """`helpdesk tickets NAME HD-M HD-N --as AGENT`: the #NAME HD-N command on HD-M."""
    @click.argument("ticket_id")
    @click.argument("other")
    @_AS
    @pass_state
    def run(state: CliState, ticket_id: str, other: str, acting: str) -> None:
        _act(state, ticket_id, acting, Reply((command(name, other),)))
    run.__doc__ = doc
    return click.command(name=name)(run)


link = _other("link", "Relate two tickets (shown on both), as `#link HD-N` by mail.")
parent = _other("parent", "Make OTHER the ticket's parent, as `#parent HD-N` by mail.")
unlink = _other("unlink", "Remove the links between two tickets, as `#unlink HD-N`.")
merge = _other("merge", "Merge the ticket into OTHER (its messages, watchers and history "
                        "move there), as `#merge HD-N` by mail.")


@click.command(name="split")
@click.argument("ticket_id")
@click.argument("message", type=int)
@_AS
@pass_state
def split(state: CliState, ticket_id: str, message: int, acting: str) -> None:
    """Make MESSAGE (its number, as `tickets show` and the desk give it) a new ticket
    related to this one, as `#split` by mail."""
    _act(state, ticket_id, acting, Reply((command("split", str(message)),)))


@click.command(name="unmerge")
@click.argument("ticket_id")
@_AS
@pass_state
def unmerge(state: CliState, ticket_id: str, acting: str) -> None:
    """Undo the merge of a ticket (admins only, within [ticket_ops] unmerge_window)."""
    _act(state, ticket_id, acting, Reply((command("unmerge", ""),)))


def _text(message: str | None) -> str:
    text = (message if message is not None else sys.stdin.read()).strip()
    if not text:
        raise click.ClickException("the text is empty (give it with -m or on stdin)")
    return text


def _act(state: CliState, ticket_id: str, acting: str, reply_: Reply) -> None:
    settings = state.settings
    number = _ticket_number(ticket_id, settings.helpdesk.ticket_prefix)
    directory = _directory(settings)
    agent = directory.agent(acting) or directory.by_address(acting)
    if agent is None:
        known = ", ".join(a.name for a in directory.agents) or "none"
        raise click.ClickException(f"--as {acting}: not an agent in agents.toml "
                                   f"(agents: {known})")
    try:
        with session_scope(_write_engine(settings)) as session:
            done = _apply(session, settings, directory, number, agent, reply_)
    except TemporaryError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{settings.helpdesk.ticket_prefix}-{number}: {done}")


def _apply(session: Session, settings: Settings, directory: Directory, number: int,
           agent: Agent, reply_: Reply) -> str:
    """Check, then apply, in one transaction: a refused command changes nothing."""
    ticket = queries.ticket(session, number)
    if ticket is None:
        raise click.ClickException(f"no ticket {settings.helpdesk.ticket_prefix}-{number}")
    done = agent_actions.run_commands(session, settings, directory, ticket, agent, reply_)
    if done.errors:
        raise click.ClickException("refused, nothing changed:\n  " + "\n  ".join(done.errors))
    if reply_.has("note"):  # only once applied: a refused note leaves no mail behind
        agent_actions.keep_note(session, settings, ticket, agent, reply_.text, route="cli",
                                threaded_by=f"command line, as {agent.name}")
    return done.summary


def _directory(settings: Settings) -> Directory:
    try:
        return agents.load(settings.beside_config(settings.paths.agents, "agents.toml"))
    except ConfigError as err:
        raise click.ClickException(str(err)) from None


TICKET_COMMANDS = [assign, set_status, reply, note, link, parent, unlink, merge,
                   unmerge, split]
