"""Copy the whole database to another URL: `helpdesk db migrate-to URL`.

For moving from SQLite to PostgreSQL when one daemon is no longer enough
(docs/scaling.md). The target's schema is built by the same Alembic migrations the
daemon runs, then every table is copied in foreign-key order through the models,
so types (UTC datetimes, JSON, bytes) convert the way the daemon reads and writes
them. The target must be empty: copying into a live database would mix two
helpdesks' ticket numbers. Stop the daemon first; nothing here locks the source.

When the target is PostgreSQL, the files in data_dir that the rows point at (raw
mails, quarantined mails, attachments) move into it as well, as the daemon would have
stored them there (store/blobs.py), in the same transaction as the rows: afterwards
no daemon on the target needs this data_dir. The files themselves are left in place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, Table, func, inspect, select, text
from sqlmodel import SQLModel

from helpdesk.errors import HelpdeskError
from helpdesk.kb import search as kb_search
from helpdesk.store import blob_files, db, models, search  # noqa: F401  (models: the tables)

log = logging.getLogger("helpdesk.migrate")
BATCH = 500


class MigrationRefused(HelpdeskError):
    """The copy cannot start; the message says why and nothing was written."""


@dataclass(frozen=True)
class Copied:
    table: str
    rows: int
    unit: str = "rows"


def _tables() -> list[Table]:
    return list(SQLModel.metadata.sorted_tables)


def _check(source: Engine, target: Engine) -> None:
    known = {t.name for t in _tables()} | {"alembic_version", search.TABLE, *search.SQLITE_SHADOW,
                                           kb_search.TABLE, *kb_search.SQLITE_SHADOW}
    extra = set(inspect(target).get_table_names()) - known
    if extra:
        # a newer schema than this code knows: copying would silently drop those tables
        raise MigrationRefused(f"target has tables this version does not know: "
                               f"{', '.join(sorted(extra))}; upgrade helpdesk first")
    with target.connect() as conn:
        for table in _tables():
            if conn.execute(select(func.count()).select_from(table)).scalar_one():
                raise MigrationRefused(f"target is not empty (table {table.name} has rows); "
                                       f"migrate-to only copies into a new database")
    if source.url.render_as_string(hide_password=False) == \
            target.url.render_as_string(hide_password=False):
        raise MigrationRefused("source and target are the same database")


def _copy_table(src: Connection, dst: Connection, table: Table) -> int:
    copied = 0
    order = list(table.primary_key.columns)
    # a chunk is up to 1 MiB (store/blobs.py): a few at a time, not BATCH MiB
    batch = 4 if table.name == "blob_chunk" else BATCH
    result = src.execution_options(yield_per=batch).execute(select(table).order_by(*order))
    for rows in result.partitions(batch):
        dst.execute(table.insert(), [dict(r._mapping) for r in rows])
        copied += len(rows)
    return copied


def _reset_sequences(dst: Connection) -> None:
    """PostgreSQL: move each id sequence past the copied ids, or the next insert collides."""
    if dst.dialect.name != "postgresql":
        return
    for table in _tables():
        if "id" not in table.c or not table.c.id.primary_key:
            continue
        dst.execute(text(
            f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM \"{table.name}\"), 0) + 1, false)"))


def migrate(source_url: str, target_url: str,
            progress: Callable[[Copied], None] | None = None,
            data_dir: Path | None = None) -> list[Copied]:
    """Build the target schema, copy every table, fix sequences, and (PostgreSQL, with
    `data_dir`) move the files the rows point at into it; returns what was done."""
    db.upgrade(source_url)  # same schema version on both sides
    db.upgrade(target_url)
    source, target = db.make_engine(source_url), db.make_engine(target_url)
    try:
        _check(source, target)
        done = []
        # one target transaction: a failure part-way leaves the target empty, not half full
        with source.connect() as src, target.begin() as dst:
            for table in _tables():
                item = Copied(table.name, _copy_table(src, dst, table))
                log.info("copied %d rows of %s", item.rows, item.table)
                if progress:
                    progress(item)
                done.append(item)
            _reset_sequences(dst)
            if data_dir is not None and blob_files.moves_into(dst):
                for item in (Copied(*moved) for moved in blob_files.move(dst, data_dir)):
                    log.info("%s: %d %s", item.table, item.rows, item.unit)
                    if progress:
                        progress(item)
                    done.append(item)
            search.rebuild(dst)  # the index is not a model table: built from the copy
            kb_search.rebuild(dst)
        return done
    finally:
        source.dispose()
        target.dispose()
