"""Read-only lookups the pipeline runs on every mail, without the ORM's per-statement work.

`Session.execute` prepares every statement for ORM results (execution options, loader
context, an ORM result wrapper) even when it selects only columns; for the small
statements asked of each mail that costs more CPU than running them. `rows` runs a
statement that selects columns only (no ORM entity: its rows are plain tuples either way)
on the session's own connection, so in its transaction and savepoint, and flushes first
exactly as the session's autoflush would: a lookup still sees the rows added earlier in
the same mail.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import CursorResult, Executable
from sqlmodel import Session


def rows(session: Session, stmt: Executable, params: Mapping[str, Any]) -> CursorResult[Any]:
    """`session.execute(stmt, params)` for a columns-only statement built once."""
    if session.autoflush:  # what Session.execute's autoflush does before a query
        session.flush()
    return session.connection().execute(stmt, params)
