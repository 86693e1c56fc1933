"""Turns at SQLite's write lock for the writers of this process, first come first served.

SQLite has one write lock per database, and a writer that finds it taken waits in
SQLite's busy handler: it sleeps (up to 100 ms at a time) and tries again. The
pipeline takes the lock again the instant a batch commits, so a writer that sleeps
through that instant waits for the next gap, and the next: during a burst the outbox
recorded almost nothing until the pipeline had stored the whole burst (docs/scaling.md),
and an agent's action on the desk waited a second or more. Every SQLite engine this
process makes (store/db.py) takes a turn here before its transaction writes and gives
it back when the transaction ends, so the writers of this process get the lock in the
order they asked for it: the outbox's claim and an agent's reply go between two of the
pipeline's batches.

A turn not given within `timeout` is not waited for any longer: the writer goes on to
SQLite's own lock and busy handler, as without turns (another process's writers, the
CLI's, never take turns here). A thread that holds a turn and writes on a second
connection does not wait for itself. PostgreSQL locks rows, not the database: its
engines take no turns.
"""

from __future__ import annotations

import threading
import time
from collections import deque

_registry: dict[str, WriteTurns] = {}
_registry_lock = threading.Lock()


def for_database(path: str) -> WriteTurns:
    """The turns of the SQLite database at `path`, one per process."""
    with _registry_lock:
        return _registry.setdefault(path, WriteTurns())


class WriteTurns:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self._holder: int | None = None  # the thread whose turn it is

    def acquire(self, timeout: float) -> bool:
        """Wait for this thread's turn; False if it was not given (see the module doc):
        then there is nothing to release."""
        me = threading.get_ident()
        with self._cond:
            if self._holder == me:
                return False
            ticket = object()
            self._waiting.append(ticket)
            deadline = time.monotonic() + timeout
            while self._holder is not None or self._waiting[0] is not ticket:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._waiting.remove(ticket)
                    self._cond.notify_all()  # the next in line may be first now
                    return False
                self._cond.wait(left)
            self._waiting.popleft()
            self._holder = me
            return True

    def release(self) -> None:
        with self._cond:
            self._holder = None
            self._cond.notify_all()
