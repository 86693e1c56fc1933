"""Files stored once by content hash: raw mails and attachments.

Written (and fsynced) before the transaction that points at them commits; a
file left behind by a rolled-back transaction is harmless and is reused.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def put(root: Path, kind: str, data: bytes, suffix: str = "") -> str:
    """Store `data` under root/kind/ab/<sha256><suffix>; returns the path relative to root."""
    digest = hashlib.sha256(data).hexdigest()
    rel = Path(kind) / digest[:2] / f"{digest}{suffix}"
    target = root / rel
    if target.exists():
        return str(rel)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return str(rel)


def read(root: Path, rel: str) -> bytes:
    return (root / rel).read_bytes()
