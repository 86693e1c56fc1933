"""CLI command groups, one module each; __main__ registers them on the `helpdesk` group.

May import every stage (a command is a door, like mail and the web); nothing imports
commands but __main__.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import click

from helpdesk.config import settings as config
from helpdesk.config.settings import Settings
from helpdesk.errors import ConfigError


@dataclass
class CliState:
    config_path: Path | None
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = config.load(self.config_path)
            except ConfigError as err:
                raise click.ClickException(str(err)) from None
        return self._settings


pass_state = click.make_pass_decorator(CliState)


# bidi overrides and isolates can make printed text read differently from what it is
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str) -> str:
    """Mail-derived text made safe for a terminal: control characters (escape sequences,
    bells, carriage returns, C1 controls) and bidi overrides removed; newlines and tabs kept."""
    return "".join(c for c in text if c in "\n\t" or (
        unicodedata.category(c) != "Cc" and c not in _BIDI))


def echo(text: str = "") -> None:
    """click.echo for human output that contains mail-derived text."""
    click.echo(printable(text))


def report_requeued(asked: tuple[int, ...], queued: list[int], nothing: str) -> None:
    """What a `retry` did: the ids queued again, then an error (exit 1) naming the ids
    asked for that were not given up; `nothing` when none was queued."""
    left = sorted(set(asked) - set(queued))
    if queued:
        click.echo(f"queued again: {', '.join(map(str, queued))}")
    if left:
        raise click.ClickException(f"not given up, left as they are: {', '.join(map(str, left))}")
    if not queued:
        click.echo(nothing)
