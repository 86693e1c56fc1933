"""Files of data_dir moved into the database's blob store, for `helpdesk db migrate-to`
(store/migrate.py) with a PostgreSQL target.

Rows written on SQLite (or on PostgreSQL before 0016_blobs_pg) point at files:
Message.raw_path and Quarantine.raw_path hold a path relative to data_dir,
Attachment.sha256 names data_dir/attachments/ab/<sha256>. Each file is stored as a blob
(store/blobs.py) and the raw_path rewritten to "db:<sha256>"; an attachment keeps its
sha256, which now finds the blob. A file is read twice in 1 MiB pieces (hash, then
chunks), never whole. A file that is missing is logged and its row left pointing at it,
as it did before: the move does not fail for one lost file.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Table, select, update

from helpdesk.store import blobs
from helpdesk.store.models import Attachment, Message, Quarantine

log = logging.getLogger("helpdesk.migrate")
PAGE = 500


def moves_into(conn: Connection) -> bool:
    return blobs.in_database(conn)


def move(conn: Connection, data_dir: Path) -> list[tuple[str, int, str]]:
    """Move every file the rows point at; returns (what, how many, unit) to report."""
    data_dir = Path(data_dir)
    done: list[tuple[str, int, str]] = []
    missing = 0
    for model in (Message, Quarantine):
        moved, lost = _move_raw(conn, model.__table__, data_dir)  # type: ignore[attr-defined]
        done.append((f"{model.__tablename__} files", moved, "moved into the database"))
        missing += lost
    moved, lost = _move_attachments(conn, data_dir)
    done.append(("attachment files", moved, "moved into the database"))
    missing += lost
    if missing:
        done.append(("files not found in data_dir", missing, "left as they were (see log)"))
    return done


def _move_raw(conn: Connection, table: Table, data_dir: Path) -> tuple[int, int]:
    moved = lost = last = 0
    while True:
        page = conn.execute(
            select(table.c.id, table.c.raw_path)
            .where(table.c.id > last, table.c.raw_path != "",
                   ~table.c.raw_path.startswith(blobs.DB_PREFIX))
            .order_by(table.c.id).limit(PAGE)).all()
        if not page:
            return moved, lost
        for row_id, rel in page:
            last = row_id
            digest = store_file(conn, data_dir / rel)
            if digest is None:
                log.warning("%s %s: %s is not in %s; left pointing at the file",
                            table.name, row_id, rel, data_dir)
                lost += 1
                continue
            conn.execute(update(table).where(table.c.id == row_id)
                         .values(raw_path=blobs.DB_PREFIX + digest))
            moved += 1


def _move_attachments(conn: Connection, data_dir: Path) -> tuple[int, int]:
    table = Attachment.__table__  # type: ignore[attr-defined]
    moved = lost = 0
    last = ""
    while True:
        page = conn.execute(select(table.c.sha256).distinct().where(table.c.sha256 > last)
                            .order_by(table.c.sha256).limit(PAGE)).scalars().all()
        if not page:
            return moved, lost
        for sha in page:
            last = sha
            if blobs.has_blob(conn, sha):
                continue
            digest = store_file(conn, blobs.attachment_path(data_dir, sha))
            if digest != sha:  # missing, or not the bytes its name promises
                log.warning("attachment %s: no intact file in %s; left as it was",
                            sha, data_dir)
                lost += 1
                continue
            moved += 1


def store_file(conn: Connection, path: Path) -> str | None:
    """Store one file as a blob; its sha256, or None when there is no such file."""
    digest = hashlib.sha256()
    try:
        size = 0
        for piece in _pieces(path):
            digest.update(piece)
            size += len(piece)
    except FileNotFoundError:
        return None
    blobs.put_chunks(conn, digest.hexdigest(), size, _pieces(path))
    return digest.hexdigest()


def _pieces(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while piece := fh.read(blobs.CHUNK):
            yield piece
