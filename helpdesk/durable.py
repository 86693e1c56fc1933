"""Writing files that survive a power cut: fsync the file, rename it, fsync the directory.

A rename is only durable once its directory is synced; until then a crash can
undo it even though the file's data reached the disk. Base module: imports nothing.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(target: Path, data: bytes, tmp: Path | None = None) -> None:
    """Write `data` to `target` so a reader (or a crash) sees all of it or nothing.

    `tmp` defaults to a hidden name beside the target; it must be on the same file
    system (a Maildir's tmp/, say).
    """
    tmp = tmp or target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    fsync_dir(target.parent)
