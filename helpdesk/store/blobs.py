"""Files stored once by content hash: raw mails and attachments.

Written (and fsynced, file and directory) before the transaction that points at
them commits; a file left behind by a rolled-back transaction is harmless and is
reused. The directory fsync matters most with PostgreSQL on another machine: its
commit does nothing for this machine's file system, and after a power cut the
spool entry may come back while the row it made already points at this file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from helpdesk.durable import fsync_dir, write_atomic
from helpdesk.errors import TemporaryError
from helpdesk.store import blobsync


def put(root: Path, kind: str, data: bytes, suffix: str = "") -> str:
    """Store `data` under root/kind/ab/<sha256><suffix>; returns the path relative to root."""
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


def read(root: Path, rel: str) -> bytes:
    """The stored bytes; TemporaryError when the file is not (or not yet) on this machine."""
    group = blobsync.current()
    if group is not None:  # written earlier in this batch, perhaps not in place yet
        group.wait_for(root / rel)
    try:
        return (root / rel).read_bytes()
    except FileNotFoundError:
        # several daemons with their own data_dir, or a shared one not mounted right now
        raise TemporaryError(f"{rel} is not in {root}: every daemon on this database needs "
                             "the same data_dir/raw, attachments and quarantine "
                             "(docs/scaling.md)") from None
