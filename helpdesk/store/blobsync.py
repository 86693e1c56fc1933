"""Blob files written for one transaction, made durable together just before its commit.

Each fsync waits for the file system's journal to commit; one after another, a batch of
32 mails spends most of its time there (each raw mail and attachment: the file, then
its directory). Issued together (helpdesk.durable.submit), the journal commits them as
one, so the batch pays for about one. Inside `group()`, `blobs.put` hands its file
here instead of writing it durably at once; `Group.sync()` (before the commit that
points at the files) finishes them: every file written, fsynced and renamed into
place, then every directory fsynced once. A file is only ever renamed into place after
its fsync, so a crash never leaves a blob with the right name and the wrong content.

The group belongs to the thread that opened it (the pipeline's worker); other threads
(web requests) write their blobs at once as before.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path

from helpdesk import durable
from helpdesk.durable import fsync_dir
from helpdesk.errors import TemporaryError

_local = threading.local()


def _write_synced(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


class Group:
    def __init__(self) -> None:
        self._files: dict[Path, Future[None]] = {}

    def write(self, target: Path, data: bytes) -> None:
        """Start writing `target`; durable (and visible under its name) after sync()."""
        if target not in self._files:
            self._files[target] = durable.submit(_write_synced, target, data)

    def pending(self, target: Path) -> bool:
        return target in self._files

    def wait_for(self, target: Path) -> None:
        """A blob written earlier in this group is about to be read: let it land."""
        future = self._files.get(target)
        if future is not None:
            self._result(future)

    def sync(self) -> None:
        """Every file of the group durable under its name; raises TemporaryError if not."""
        for future in self._files.values():
            self._result(future)
        dirs = {target.parent for target in self._files}
        for future in [durable.submit(fsync_dir, d) for d in dirs]:
            self._result(future)
        self._files.clear()

    @staticmethod
    def _result(future: Future[None]) -> None:
        try:
            future.result()
        except OSError as err:  # a full or failing disk: the batch waits, nothing is lost
            raise TemporaryError(f"blob write failed: {err}") from err

    def abandon(self) -> None:
        """The transaction did not commit. Files left behind are harmless and reused by
        the next put that finds them, which then relies on them being durable: sync what
        landed all the same."""
        with contextlib.suppress(TemporaryError):
            self.sync()
        self._files.clear()


def current() -> Group | None:
    return getattr(_local, "group", None)


@contextmanager
def group() -> Iterator[Group]:
    """Defer this thread's blob writes until `sync()`; nests into an open group."""
    outer = current()
    if outer is not None:
        yield outer
        return
    mine = _local.group = Group()
    try:
        yield mine
    finally:
        _local.group = None
        mine.abandon()
