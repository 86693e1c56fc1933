"""Engines, sessions and schema migrations.

SQLite runs in WAL mode with synchronous=FULL: the spool entry is deleted right
after a commit, so the commit must survive a power cut, not just a crash.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, create_engine

from helpdesk.errors import TemporaryError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split("///", 1)[-1]
    if url.startswith("sqlite") and path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def is_unavailable(err: BaseException) -> bool:
    """Does this database error mean 'try later' (server down, locked) rather than a bug?"""
    if isinstance(err, OperationalError):
        return True
    return isinstance(err, DBAPIError) and bool(err.connection_invalidated)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error; outages become TemporaryError."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except DBAPIError as err:
        session.rollback()
        if is_unavailable(err):
            raise TemporaryError(f"database unavailable: {err.orig or err}") from err
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (the daemon does this at start)."""
    from alembic import command

    _ensure_sqlite_dir(url)
    try:
        command.upgrade(alembic_config(url), revision)
    except OperationalError as err:
        raise TemporaryError(f"database unavailable: {err.orig or err}") from err
