"""Writing files that survive a power cut: fsync the file, rename it, fsync the directory.

A rename is only durable once its directory is synced; until then a crash can
undo it even though the file's data reached the disk. Base module: imports nothing.

`submit` and `each` run file-system calls that wait in the kernel (fsync, unlink)
side by side on a few shared threads: one after another, each fsync waits for its
own journal commit (and, on a disk mounted with `discard`, each unlink for its own
trim); issued together, the file system serves them at once. A batch of 32 mails'
files takes the time of a few, not of 32 (bench/pipeline.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
IO_THREADS = 8  # they sleep in the kernel, not on the GIL
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def submit(fn: Callable[..., T], *args: Any) -> Future[T]:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="durable-io")
    return _pool.submit(fn, *args)


def each(fn: Callable[[T], object], items: Iterable[T]) -> None:
    """fn(item) for every item, side by side; raises the first error once all are done."""
    futures = [submit(fn, item) for item in items]
    errors = [e for e in (f.exception() for f in futures) if e is not None]
    if errors:
        raise errors[0]


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
