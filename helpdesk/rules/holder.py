"""Keep the last good RuleSet; reload on demand (SIGHUP) or when the files change.

A reload that fails leaves the current rules in force and returns (and logs)
the error; the daemon may also mail it to the admins via `on_error`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import watchfiles

from helpdesk.config.agents import Directory
from helpdesk.config.settings import Settings
from helpdesk.errors import RuleError
from helpdesk.rules import Decision, MailContext
from helpdesk.rules.context import RulePaths, load_from_settings
from helpdesk.rules.engine import evaluate
from helpdesk.rules.model import RuleSet

log = logging.getLogger(__name__)

OnError = Callable[[RuleError], Awaitable[None] | None]


class RulesHolder:
    """The rules in force. `current` is swapped atomically; readers need no lock."""

    def __init__(self, load: Callable[[], RuleSet], paths: RulePaths) -> None:
        self._load = load
        self.paths = paths
        self.current: RuleSet = load()  # a bad file at start-up raises: refuse to start
        self.last_error: RuleError | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RulesHolder:
        """Load rules, agents and business hours; raises RuleSetError if they are invalid."""
        return cls(lambda: load_from_settings(settings), RulePaths.from_settings(settings))

    def reload(self) -> RuleError | None:
        """Load the files again; on error keep the current rules and return the error."""
        try:
            fresh = self._load()
        except RuleError as err:
            self.last_error = err
            log.error("rules not reloaded, the previous rules stay in force:\n%s", err)
            return err
        self.current = fresh
        self.last_error = None
        log.info("rules reloaded: %d rules from %d files", len(fresh.rules), len(fresh.sources))
        return None

    def directory(self) -> Directory:
        """The agents of agents.toml, loaded (and reloaded) with the rules."""
        return self.current.directory

    def decide(self, ctx: MailContext) -> Decision:
        """The pipeline's Router protocol: evaluate the rules in force."""
        return evaluate(self.current, ctx)

    def watched_dirs(self) -> list[Path]:
        """Directories to watch: those holding the files (editors replace files by rename)."""
        dirs = {self.paths.rules.parent, self.paths.agents.parent}
        rules_dir = self.paths.rules_dir
        dirs.add(rules_dir if rules_dir.is_dir() else rules_dir.parent)
        return sorted(d.resolve() for d in dirs if d.is_dir())

    def is_relevant(self, changed: Path) -> bool:
        changed = changed.resolve()
        files = {self.paths.rules.resolve(), self.paths.agents.resolve()}
        rules_dir = self.paths.rules_dir.resolve()
        return (
            changed in files
            or changed == rules_dir
            or (changed.parent == rules_dir and changed.suffix == ".toml")
        )


async def watch_rules(
    holder: RulesHolder,
    *,
    on_error: OnError | None = None,
    stop_event: asyncio.Event | None = None,
    debounce_ms: int = 200,
    force_polling: bool | None = None,
) -> None:
    """Reload `holder` whenever its files change; runs until cancelled or `stop_event` is set."""
    dirs = holder.watched_dirs()
    if not dirs:
        log.warning("rules watcher: no directory to watch")
        return
    async for changes in watchfiles.awatch(
        *dirs,
        watch_filter=lambda _change, path: holder.is_relevant(Path(path)),
        stop_event=stop_event,
        debounce=debounce_ms,
        force_polling=force_polling,
        recursive=False,
    ):
        log.info("rules files changed: %s", ", ".join(sorted({p for _, p in changes})))
        error = holder.reload()
        if error is not None and on_error is not None:
            result = on_error(error)
            if inspect.isawaitable(result):
                await result
