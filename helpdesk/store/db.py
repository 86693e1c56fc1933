"""Engines, sessions and schema migrations.

SQLite runs in WAL mode with synchronous=FULL: the spool entry is deleted right
after a commit, so the commit must survive a power cut, not just a crash.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, create_engine

from helpdesk.errors import SchemaTooNew, TemporaryError
from helpdesk.store import turns as write_turns
from helpdesk.store.migration_lock import migration_lock

if TYPE_CHECKING:
    from helpdesk.config.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split("///", 1)[-1]
    if url.startswith("sqlite") and path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


# the execution option naming the webhook events worth recording (store/hook_events.py)
HOOK_EVENTS_OPTION = "helpdesk_hook_events"
# how long a SQLite writer waits: for the write lock (busy handler), and for its turn
SQLITE_BUSY_SECONDS = 30


def make_engine(url: str, *, hook_events: Collection[str] | None = None) -> Engine:
    """`hook_events`: the webhook events some configured hook is sent
    (Settings.hook_events_wanted), the only ones its sessions record; None: all."""
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS,
                                                  "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        _take_turns(engine, at_begin=False)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    if hook_events is None:
        return engine
    return engine.execution_options(**{HOOK_EVENTS_OPTION: frozenset(hook_events)})


def engine_for(settings: Settings) -> Engine:
    """The engine the daemon and the commands use: its sessions record the webhook events
    a configured hook is sent, and no others."""
    return make_engine(settings.database_url, hook_events=settings.hook_events_wanted())


def batch_engine(engine: Engine) -> Engine:
    """The engine for a transaction holding many savepoints (the pipeline's batches).

    PostgreSQL: the engine itself. SQLite: a second engine on the same file, set up by
    SQLAlchemy's documented recipe for savepoints with the sqlite3 driver ("Enabling
    Non-Legacy SQLite Transactional Modes": the driver's own BEGIN switched off, ours
    emitted from the "begin" event). The driver's legacy mode begins a transaction
    only before an INSERT/UPDATE/DELETE, never before a SAVEPOINT, so the first
    savepoint of a batch would be a transaction of its own, committed on release; one
    mail's savepoint rolled back later could not take it back, nor could the batch.
    Only this engine changes: the daemon's other sessions keep the legacy mode, whose
    reads take no snapshot that a later write would find stale.

    Its BEGIN is IMMEDIATE: a batch writes, and a deferred one that read first would
    fail outright (SQLITE_BUSY_SNAPSHOT, no busy wait) when another connection wrote
    between its first read and its first write.
    """
    if engine.dialect.name != "sqlite":
        return engine
    batch = create_engine(engine.url, connect_args={"timeout": SQLITE_BUSY_SECONDS,
                                                    "check_same_thread": False})
    event.listen(batch, "connect", _sqlite_pragmas)
    event.listen(batch, "connect", _no_driver_begin)
    _take_turns(batch, at_begin=True)  # before the BEGIN IMMEDIATE below takes the lock
    event.listen(batch, "begin", _begin_immediate)
    options = engine.get_execution_options()
    return batch.execution_options(**options) if options else batch


def _no_driver_begin(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_conn.isolation_level = None


def _begin_immediate(conn) -> None:  # type: ignore[no-untyped-def]
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
    cur.close()


_TURN = "helpdesk_write_turn"  # in a DBAPI connection's info: it holds this process's turn
# what the sqlite3 driver opens a transaction for in its legacy mode (the daemon's engine)
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def _take_turns(engine: Engine, *, at_begin: bool) -> None:
    """The engine's write transactions take turns with this process's other writers
    (store/turns.py): from the BEGIN (the batch engine's BEGIN IMMEDIATE), or else from
    the first statement that writes, until the transaction ends. Given back as the
    commit or rollback starts: the next writer's statement then waits the
    milliseconds of that commit in SQLite's busy handler."""
    turns = write_turns.for_database(str(Path(engine.url.database or "").resolve()))

    def take(conn) -> None:  # type: ignore[no-untyped-def]
        if _TURN not in conn.info:  # asked once per transaction: not given is not asked again
            conn.info[_TURN] = turns.acquire(SQLITE_BUSY_SECONDS)

    def take_to_write(conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip()[:7].upper().startswith(_WRITES):
            take(conn)

    def give_back(conn) -> None:  # type: ignore[no-untyped-def]
        if conn.info.pop(_TURN, False):
            turns.release()

    def give_back_pooled(_dbapi_conn, record, *_args) -> None:  # type: ignore[no-untyped-def]
        # a connection returned or dropped with its transaction still open
        if record is not None:
            give_back(record)  # the record's info is the connection's

    if at_begin:
        event.listen(engine, "begin", take)
    else:
        event.listen(engine, "before_cursor_execute", take_to_write)
    event.listen(engine, "commit", give_back)
    event.listen(engine, "rollback", give_back)
    event.listen(engine, "checkin", give_back_pooled)
    event.listen(engine, "invalidate", give_back_pooled)


def is_unavailable(err: BaseException) -> bool:
    """Does this database error mean 'try later' (server down, locked) rather than a bug?"""
    if isinstance(err, OperationalError):
        return True
    return isinstance(err, DBAPIError) and bool(err.connection_invalidated)


@contextmanager
def snapshot_scope(engine: Engine) -> Iterator[Session]:
    """A read that sees one moment. PostgreSQL's default READ COMMITTED gives each
    statement its own snapshot, so a ticket read in several queries could show a
    message's event without the message. SQLite's driver, in the legacy mode of the
    daemon's engine, begins no transaction for a SELECT, so there each statement sees
    the latest commit too: the read begins one (deferred: a read snapshot, no lock)."""
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")  # type: ignore[assignment]
    with session_scope(engine) as session:
        if engine.dialect.name == "sqlite":
            session.connection().exec_driver_sql("BEGIN")
        yield session


@contextmanager
def single_read_scope(engine: Engine) -> Iterator[Session]:
    """A read of one statement, outside a transaction: on PostgreSQL a transaction costs
    a BEGIN and a COMMIT round trip beside the statement's own (the desk's sign-in check
    on every request). Only for a single statement: several would each see their own
    moment."""
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    with session_scope(autocommit) as session:  # type: ignore[arg-type]
        yield session


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


# `revision: str = '0016_x'`, `down_revision = "0015_y"`: whatever the annotation and quotes
_REVISION = re.compile(r"""^revision\b[^=\n]*=\s*['"](\w+)['"]""", re.M)
_DOWN = re.compile(r"""^down_revision\b[^=\n]*=\s*['"](\w+)['"]""", re.M)


@cache  # the scripts do not change under a running process
def _revisions() -> tuple[frozenset[str], str]:
    """Every migration's id and the newest, read from the scripts' text: the chain is
    linear (tests/test_schema_head.py checks this against alembic's own answer)."""
    revisions, downs = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text()
        revisions.update(_REVISION.findall(text))
        downs.update(_DOWN.findall(text))
    heads = revisions - downs
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {sorted(heads)}")
    return frozenset(revisions), heads.pop()


def head_revision() -> str:
    """The newest migration's id."""
    return _revisions()[1]


def _current(url: str) -> list[str] | None:
    """The revision the database is at, asked with one query, so that a daemon restarted
    on a current database never imports alembic (some 15 MiB it would keep for the rest
    of its life). None: no schema yet, or no database (alembic says which)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except DBAPIError:
        return None
    finally:
        engine.dispose()


def _newer_text(have: Collection[str], want: str) -> str:
    return (f"the database schema ({', '.join(sorted(have))}) is newer than this helpdesk "
            f"version knows ({want}); upgrade helpdesk on this machine")


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (the daemon does this at start). SchemaTooNew
    when a newer helpdesk (on another machine) has migrated the database further."""
    _ensure_sqlite_dir(url)
    if revision == "head" and _current(url) == [head_revision()]:
        return
    from alembic import command

    try:
        with migration_lock(url):
            # whoever held the lock before us may have done the work
            current = _current(url)
            known, head = _revisions()
            if revision == "head" and current == [head]:
                return
            if current and not set(current) <= known:
                raise SchemaTooNew(_newer_text(current, head))
            command.upgrade(alembic_config(url), revision)
    except OperationalError as err:
        raise TemporaryError(f"database unavailable: {err.orig or err}") from err


def schema_problem(engine: Engine) -> str | None:
    """What keeps this helpdesk version from reading the database; None when the schema is current.

    Commands that only look use this instead of `upgrade`: looking must not migrate a
    database, least of all one that a newer helpdesk on another machine already moved on.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    path = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and path and path != ":memory:" \
            and not Path(path).exists():
        # connecting would create an empty database file; looking must leave nothing behind
        return f"no database at {path}; create it with `helpdesk db upgrade`"
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except OperationalError as err:
        raise TemporaryError(f"database unavailable: {err.orig or err}") from err
    script = ScriptDirectory(str(MIGRATIONS))
    heads = set(script.get_heads())
    if current == heads:
        return None
    if not current:
        return "the database has no helpdesk schema yet; run `helpdesk db upgrade`"
    have, want = ", ".join(sorted(current)), ", ".join(sorted(heads))
    if not current <= {rev.revision for rev in script.walk_revisions()}:
        return _newer_text(current, want)
    return (f"the database schema ({have}) is older than this helpdesk version ({want}); "
            f"run `helpdesk db upgrade`")
