"""The `helpdesk` command: parse arguments, load config, hand over. No logic here."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from helpdesk.commands import CliState


class _Commands(click.Group):
    """Imports the command modules when a command other than `run` is asked for (or
    their list, for --help): the daemon then holds none of the other commands' code,
    nor what only they import (the IMAP client, the web sign-in): about 1 MiB of its
    memory (issue #18: the whole daemon under 150 MiB)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            _register()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        _register()
        return super().list_commands(ctx)


@click.group(cls=_Commands)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    envvar="HELPDESK_CONFIG",
    help="Config file (default: $HELPDESK_CONFIG, else config/helpdesk.toml).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """helpdesk: email in, tickets out."""
    ctx.obj = CliState(config_path)


def _register() -> None:
    from helpdesk.commands import act, contacts, core, imap, outbox, rules
    from helpdesk.commands import api as api_commands
    from helpdesk.commands import jobs as jobs_commands
    from helpdesk.commands import kb as kb_commands
    from helpdesk.commands import search as search_commands
    from helpdesk.commands import stats as stats_commands
    from helpdesk.commands import web as web_commands

    for module in (core, rules, imap, jobs_commands, stats_commands, search_commands,
                   web_commands, api_commands, kb_commands, contacts, outbox):
        for command in module.COMMANDS:
            cli.add_command(command)
    for command in act.TICKET_COMMANDS:
        core.tickets_group.add_command(command)
    from helpdesk.commands import new_ticket

    core.tickets_group.add_command(new_ticket.new)  # agents open tickets


def main() -> None:
    from helpdesk.commands import core

    cli.add_command(core.run)  # the others when asked for (_Commands)
    sys.exit(cli.main(standalone_mode=True))


if __name__ == "__main__":
    main()
