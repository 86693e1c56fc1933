"""CLI command groups, one module each; __main__ registers them on the `helpdesk` group."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from helpdesk import config
from helpdesk.config import Settings
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
