"""Turns at SQLite's write lock for the writers of this process, first come first served.

SQLite has one write lock per database, and a writer that finds it taken waits in
SQLite's busy handler: it sleeps (up to 100 ms at a time) and tries again. The
pipeline takes the lock again the instant a batch commits, so a writer that sleeps
through that instant waits for the next gap, and the next: during a burst the outbox
recorded almost nothing until the pipeline had stored the whole burst (docs/scaling.md),
and a backlog of an hour would have held every acknowledgement back for that hour.
Writers of this process that ask for a turn here get the lock in the order they asked:
the outbox's claim goes between two batches of the pipeline.

PostgreSQL locks rows, not the database: there a turn is nothing.
Base module: imports nothing of the helpdesk.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from sqlalchemy import Engine


class WriteTurns:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0  # the ticket the next writer to ask draws
        self._serving = 0  # the ticket whose turn it is

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        with self._cond:
            mine = self._next
            self._next += 1
            while self._serving != mine:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._serving += 1
                self._cond.notify_all()


class NoTurns:
    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        yield


def turns_for(engine: Engine) -> WriteTurns | NoTurns:
    """One of these per database per process, shared by the writers that take turns."""
    return WriteTurns() if engine.dialect.name == "sqlite" else NoTurns()
