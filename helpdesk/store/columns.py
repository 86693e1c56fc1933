"""Column types and defaults every table module shares; imports nothing of the store,
so the table modules (models, web_models) import it without a cycle."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, TypeDecorator

from helpdesk import clock


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def _now() -> datetime:
    return clock.now()


# default_factory for the list and dict columns: pydantic reads a factory's signature on
# every construction of a row, and a builtin's (`list`, `dict`) is parsed from its text
# signature each time, some 75 us: more than the rest of a Ticket's construction
def _list() -> list[Any]:
    return []


def _dict() -> dict[str, Any]:
    return {}
