"""Originals (raw mails), attachments and quarantined mails, stored once by content hash.

Where they go depends on the database, decided once per store by its dialect:

- SQLite: files under data_dir, root/kind/ab/<sha256><suffix>, written and fsynced (file
  and directory) before the transaction that points at them commits. A file left behind
  by a rolled-back transaction is harmless and is reused.
- PostgreSQL: in the database (blob_models: a `blob` row and its 1 MiB `blob_chunk`
  rows), written in the same transaction as the rows that point at them, so the commit
  is what makes them durable and every daemon on the database can read them: several
  daemons share nothing but PostgreSQL (docs/scaling.md). Storing the same bytes again
  writes nothing (the `blob` row is unique on the hash; a concurrent writer of the same
  bytes waits for the first one's commit and then finds it).

References, as stored in Message.raw_path and Quarantine.raw_path:

- "db:<sha256>": a blob in the database;
- anything else ("raw/ab/<sha256>.eml", "quarantine/ab/<sha256>.eml"): a file relative
  to data_dir, as every row written before 0016_blobs_pg (or on SQLite) has it.

Attachment.sha256 names the content on both: the database's blob when it has one, else
the file data_dir/attachments/ab/<sha256>. Reading follows the reference, not the
dialect, so rows written before (files) keep working after a move to PostgreSQL, and
`helpdesk db migrate-to` (store/migrate.py) moves those files into the database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

from helpdesk.durable import fsync_dir, write_atomic
from helpdesk.errors import TemporaryError
from helpdesk.store import blobsync
from helpdesk.store.blob_models import Blob, BlobChunk

DB_PREFIX = "db:"
CHUNK = 1 << 20  # a download reads one chunk per query; a write inserts one per statement

_BLOB = Blob.__table__  # type: ignore[attr-defined]
_CHUNK = BlobChunk.__table__  # type: ignore[attr-defined]


def in_database(engine_or_conn: Engine | Connection) -> bool:
    """Do new blobs go into this database (PostgreSQL) rather than into data_dir?"""
    return engine_or_conn.dialect.name == "postgresql"


class BlobStore:
    """Blobs for the rows one session writes or reads: put returns the reference to
    store, read follows one. Make one per transaction with `for_session`."""

    def __init__(self, session: Session, data_dir: Path) -> None:
        self.session = session
        self.root = Path(data_dir)
        self.in_db = in_database(session.get_bind())

    def put(self, kind: str, data: bytes, suffix: str = "") -> str:
        """Store `data` ("raw", "quarantine", "attachments"); returns its reference."""
        if not self.in_db:
            return _put_file(self.root, kind, data, suffix)
        digest = hashlib.sha256(data).hexdigest()
        view = memoryview(data)
        put_chunks(self.session.connection(), digest, len(data),
                   (view[i:i + CHUNK] for i in range(0, len(data), CHUNK)))
        return DB_PREFIX + digest

    def put_attachment(self, data: bytes) -> str:
        """Store an attachment; returns its sha256 (what Attachment.sha256 holds)."""
        return digest_of(self.put("attachments", data))

    def read(self, ref: str) -> bytes:
        """The bytes a reference names; TemporaryError when they are not to be had here."""
        if ref.startswith(DB_PREFIX):
            return b"".join(_chunks(self.session.connection(), ref[len(DB_PREFIX):]))
        return _read_file(self.root, ref)


def for_session(session: Session, data_dir: Path) -> BlobStore:
    return BlobStore(session, data_dir)


def digest_of(ref: str) -> str:
    """The sha256 in a reference of either kind."""
    if ref.startswith(DB_PREFIX):
        return ref[len(DB_PREFIX):]
    return ref.rsplit("/", 1)[-1].split(".", 1)[0]


def attachment_path(data_dir: Path, sha256: str) -> Path:
    return Path(data_dir) / "attachments" / sha256[:2] / sha256


# -- downloads: a file, or chunks read one query at a time ---------------------------


@dataclass(frozen=True)
class DbBlob:
    """A blob in the database, read chunk by chunk, each chunk on a connection of its
    own: a slow client downloading 25 MiB holds neither a pooled connection nor more
    than one chunk in memory. The content never changes (content-addressed), so the
    pieces need no common snapshot."""

    engine: Engine
    sha256: str
    size: int
    chunks: int

    def __iter__(self) -> Iterator[bytes]:
        for seq in range(self.chunks):
            with self.engine.connect() as conn:
                data = conn.execute(select(_CHUNK.c.data).where(
                    _CHUNK.c.sha256 == self.sha256, _CHUNK.c.seq == seq)).scalar_one_or_none()
            if data is None:
                raise TemporaryError(f"blob {self.sha256} lost its chunk {seq}")
            yield bytes(data)


def open_attachment(engine: Engine, data_dir: Path, sha256: str) -> DbBlob | Path | None:
    """Where an attachment's bytes are: in the database, in a file here, or nowhere here
    (a file written by another daemon before 0016_blobs_pg, on its own data_dir)."""
    with engine.connect() as conn:
        row = conn.execute(select(_BLOB.c.size, _BLOB.c.chunks)
                           .where(_BLOB.c.sha256 == sha256)).first()
    if row is not None:
        return DbBlob(engine, sha256, int(row.size), int(row.chunks))
    path = attachment_path(data_dir, sha256)
    return path if path.is_file() else None


# -- the database side -------------------------------------------------------------------


def put_chunks(conn: Connection, digest: str, size: int, chunks: Iterable[bytes | memoryview]
               ) -> bool:
    """Insert a blob whose sha256 the caller computed; False (and `chunks` not read) when
    the database has it already. One statement per chunk: never all of them in memory."""
    count = -(-size // CHUNK)
    added = conn.execute(postgresql.insert(_BLOB).values(sha256=digest, size=size, chunks=count)
                         .on_conflict_do_nothing().returning(_BLOB.c.sha256)).first()
    if added is None:
        return False
    for seq, piece in enumerate(chunks):
        conn.execute(insert(_CHUNK).values(sha256=digest, seq=seq, data=bytes(piece)))
    return True


def has_blob(conn: Connection, digest: str) -> bool:
    return conn.execute(select(_BLOB.c.sha256).where(_BLOB.c.sha256 == digest)).first() \
        is not None


def _chunks(conn: Connection, digest: str) -> Iterator[bytes]:
    count = conn.execute(select(_BLOB.c.chunks).where(_BLOB.c.sha256 == digest)
                         ).scalar_one_or_none()
    if count is None:
        raise TemporaryError(f"blob {digest} is not in the database")
    for seq in range(count):
        yield bytes(conn.execute(select(_CHUNK.c.data).where(
            _CHUNK.c.sha256 == digest, _CHUNK.c.seq == seq)).scalar_one())


# -- the file side -----------------------------------------------------------------------


def _put_file(root: Path, kind: str, data: bytes, suffix: str = "") -> str:
    """Store `data` under root/kind/ab/<sha256><suffix>; returns the path relative to root.

    The directory fsync matters with PostgreSQL on another machine (rows written before
    0016_blobs_pg): its commit does nothing for this machine's file system."""
    digest = hashlib.sha256(data).hexdigest()
    rel = Path(kind) / digest[:2] / f"{digest}{suffix}"
    target = root / rel
    group = blobsync.current()  # a batch: made durable together before its commit
    if target.exists() or (group is not None and group.pending(target)):
        return str(rel)
    if not target.parent.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        fsync_dir(target.parent.parent)
    if group is not None:
        group.write(target, data)
    else:
        write_atomic(target, data)
    return str(rel)


def _read_file(root: Path, rel: str) -> bytes:
    """The stored bytes; TemporaryError when the file is not (or not yet) on this machine."""
    group = blobsync.current()
    if group is not None:  # written earlier in this batch, perhaps not in place yet
        group.wait_for(root / rel)
    try:
        return (root / rel).read_bytes()
    except FileNotFoundError:
        # written before 0016_blobs_pg by another daemon with its own data_dir, or a
        # shared one not mounted right now
        raise TemporaryError(f"{rel} is not in {root}: a file written by another daemon "
                             "needs the same data_dir/raw, attachments and quarantine, or "
                             "`helpdesk db migrate-to` to move it into PostgreSQL "
                             "(docs/scaling.md)") from None
