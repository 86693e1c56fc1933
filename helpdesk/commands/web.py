"""`helpdesk web`: sign-in matters of the desk that need the server, not a browser.

login-link prints a one-time link (the first sign-in on a fresh install, or when mail
does not work yet); set-password reads a password from the terminal (asked twice) or
from stdin when it is not a terminal; logout-everywhere ends every sign-in of an agent.
"""

from __future__ import annotations

import sys

import click

from helpdesk.commands import CliState, pass_state
from helpdesk.commands.act import _directory
from helpdesk.commands.core import _write_engine
from helpdesk.config.agents import Agent
from helpdesk.store.db import session_scope
from helpdesk.web import sessions, signin
from helpdesk.web.context import default_base_url


@click.group(name="web")
def web_group() -> None:
    """The agent desk: sign-in links, passwords, sessions."""


def _agent(state: CliState, name: str) -> Agent:
    agent = _directory(state.settings).agent(name)
    if agent is None:
        raise click.ClickException(f"no agent named {name!r} in agents.toml")
    return agent


@web_group.command(name="login-link")
@click.argument("name")
@pass_state
def login_link(state: CliState, name: str) -> None:
    """Print a one-time sign-in link for agent NAME."""
    settings = state.settings
    agent = _agent(state, name)
    with session_scope(_write_engine(settings)) as session:
        link = signin.issue_link(session, settings, agent, default_base_url(settings))
    minutes = int(settings.web.login_link_valid.total_seconds() // 60)
    click.echo(link)
    click.echo(f"(works once, within {minutes} minutes)", err=True)


def _read_password() -> str:
    if sys.stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\r\n")


@web_group.command(name="set-password")
@click.argument("name")
@click.option("--remove", is_flag=True, help="Remove the password: sign-in by link only.")
@pass_state
def set_password(state: CliState, name: str, remove: bool) -> None:
    """Set (or --remove) agent NAME's desk password; read from the terminal or stdin."""
    agent = _agent(state, name)
    engine = _write_engine(state.settings)
    if remove:
        with session_scope(engine) as session:
            removed = signin.remove_password(session, agent.name)
        click.echo(f"password of {agent.name} removed" if removed
                   else f"{agent.name} had no password")
        return
    password = _read_password()
    try:
        with session_scope(engine) as session:
            signin.set_password(session, agent.name, password)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"password of {agent.name} set")


@web_group.command(name="logout-everywhere")
@click.argument("name")
@pass_state
def logout_everywhere(state: CliState, name: str) -> None:
    """End every desk sign-in of agent NAME (also of one no longer in agents.toml)."""
    with session_scope(_write_engine(state.settings)) as session:
        ended = sessions.close_all(session, name)
    click.echo(f"{ended} session{'' if ended == 1 else 's'} of {name} ended")


COMMANDS = [web_group]
