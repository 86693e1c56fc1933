"""One schema migration at a time per database, across processes.

Two daemons sharing a PostgreSQL, or the daemon and `helpdesk db upgrade` on one
SQLite file, can start migrating at the same moment: both read the old version, both
run the first migration, and one fails ("table contact already exists") or, worse,
trips over the other's half-done table rebuild. Under the lock the second one waits,
then finds the schema current and does nothing.

PostgreSQL: a session-level advisory lock, seen by every machine sharing the database.
SQLite: an flock on a file beside the database (SQLite's users share one machine); a
process that dies holding it releases it with its file descriptors.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, make_url, pool, text

from helpdesk.errors import TemporaryError

# pg_advisory_lock's key: any constant no other lock of ours uses ("hdmigrat" in ASCII)
ADVISORY_KEY = 0x68646D6967726174
WAIT_SECONDS = 120.0  # a migration takes seconds; longer means a stuck process to look at
POLL_SECONDS = 0.1


@contextmanager
def migration_lock(url: str, wait: float = WAIT_SECONDS) -> Iterator[None]:
    """Hold the database's migration lock; TemporaryError when another process keeps it
    longer than `wait` seconds."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        with _advisory_lock(url, wait):
            yield
        return
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        yield  # nobody else can see this database
        return
    with _file_lock(f"{database}-migrate-lock", wait):
        yield


def _waited_too_long(wait: float, where: str) -> TemporaryError:
    return TemporaryError(f"another process has been migrating the database for over "
                          f"{wait:.0f} s ({where}); it may be stuck: see which process "
                          f"holds it, or stop it and try again")


@contextmanager
def _advisory_lock(url: str, wait: float) -> Iterator[None]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            deadline = time.monotonic() + wait
            take = text("SELECT pg_try_advisory_lock(:key)").bindparams(key=ADVISORY_KEY)
            while not conn.execute(take).scalar_one():
                if time.monotonic() > deadline:
                    raise _waited_too_long(wait, f"advisory lock {ADVISORY_KEY}")
                time.sleep(POLL_SECONDS)
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)").bindparams(
                    key=ADVISORY_KEY))
    finally:
        engine.dispose()


@contextmanager
def _file_lock(path: str, wait: float) -> Iterator[None]:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # read-only is all flock needs, and readable by all: a file left by another user (the
    # service user, an admin's shell) never keeps the next one from taking turns
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise _waited_too_long(wait, f"lock file {path}") from None
                time.sleep(POLL_SECONDS)
        yield  # closing the descriptor below releases the lock
    finally:
        os.close(fd)
