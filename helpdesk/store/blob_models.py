"""The tables of the database blob store (migration 0016_blobs_pg; helpdesk/store/blobs.py).

Only PostgreSQL writes them: there originals, attachments and quarantined mails live in
the database, so several daemons share nothing else. The tables exist on SQLite too
(one schema for both), where they stay empty unless a database was moved from
PostgreSQL. Imports only columns, so models can register it without a cycle.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Integer, LargeBinary
from sqlmodel import Field, SQLModel

from helpdesk.store.columns import UTCDateTime, _now


class Blob(SQLModel, table=True):
    """Content stored once by its sha256; the bytes are in `chunks` rows of BlobChunk,
    written in the same transaction as this row (all of them commit, or none)."""

    sha256: str = Field(primary_key=True, max_length=64)
    size: int = Field(default=0)
    chunks: int = Field(default=0)
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)


class BlobChunk(SQLModel, table=True):
    """One piece (blobs.CHUNK bytes, the last one shorter): a 25 MiB attachment is read
    back piece by piece for a download, never as one 25 MiB value."""

    __tablename__ = "blob_chunk"

    sha256: str = Field(foreign_key="blob.sha256", primary_key=True, max_length=64)
    seq: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
