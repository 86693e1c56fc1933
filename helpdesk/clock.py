"""One clock for the whole daemon, so tests and `jobs run-due --now` can set the time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_source: Callable[[], datetime] | None = None


def now() -> datetime:
    """The current time, timezone-aware in UTC."""
    if _source is not None:
        return _source()
    return datetime.now(UTC)


def set_source(source: Callable[[], datetime] | None) -> None:
    """Replace the clock (tests, `--now`); None restores the wall clock."""
    global _source
    _source = source


def freeze(at: datetime) -> None:
    """Fix the clock at one moment."""
    fixed = at if at.tzinfo else at.replace(tzinfo=UTC)
    set_source(lambda: fixed)
