"""Mails the relay accepted, on disk before the next mail goes out, until the database
records them "sent" (SQLite only; outgoing/outbox.py).

Recording each delivery in a commit of its own needs SQLite's write lock, which the
pipeline holds through every batch: during a burst each "sent" waited for a batch, and
the acknowledgements with it. A line appended here and fsynced is as durable as that
commit and waits for nobody; the outbox writes the lines it holds into the database
with its next claim, in the same transaction and before it picks any row, so a row
recorded here is never picked again, and empties the file once that has committed.

A process that dies leaves its lines; the next one reads them at start and records
them with its first claim, before any row can be sent again. A line names the row and
the key of its Message-ID: the update matches both, so a row id that SQLite handed out
again can never be marked by an old line. A line torn by a crash while it was written
is skipped: that mail may go out once more, the one-mail window the outbox has always
had between the relay's 250 and its record.

One process writes a data_dir's journal: the daemon's outbox worker, which holds a lock
on it (flock). A second worker on the same data_dir (a second daemon started on the same
SQLite database by mistake) does not get it, leaves the file alone and records each
delivery in a commit of its own, as on PostgreSQL.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

log = logging.getLogger("helpdesk.outgoing.sent_journal")


@dataclass(frozen=True)
class Delivery:
    row_id: int
    msgid_key: str
    at: datetime


class SentJournal:
    def __init__(self, path: Path, file: io.FileIO) -> None:
        self.path = path
        self._file = file  # open, and locked, for as long as this object lives
        self.pending: list[Delivery] = self._read()
        if self.pending:
            log.info("%d deliveries of an earlier run not yet recorded in the database: "
                     "recording them before anything is sent", len(self.pending))

    @classmethod
    def open(cls, path: Path) -> SentJournal | None:
        """The journal at `path`, locked for this process; None if another holds it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        file = open(path, "ab", buffering=0)  # noqa: SIM115 (open while the worker is)
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            log.warning("%s is held by another process (a second daemon on this data_dir?): "
                        "recording each delivery in the database instead", path)
            return None
        return cls(path, file)

    def add(self, row_id: int, key: str, at: datetime) -> None:
        """Durable on return (OSError if it could not be made so)."""
        line = f"{row_id} {key or '-'} {at.isoformat()}\n".encode()
        if self._file.write(line) != len(line):  # appended: one whole line at the end
            raise OSError(f"{self.path}: short write (disk full?)")
        os.fsync(self._file.fileno())
        self.pending.append(Delivery(row_id, key, at))

    def recorded(self) -> None:
        """The database has committed every pending delivery: forget them. Not synced:
        lines a crash brings back are recorded again, which changes nothing."""
        self._file.truncate(0)
        self.pending = []

    def _read(self) -> list[Delivery]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        whole = data.rfind(b"\n") + 1
        if whole < len(data):  # the last line was being written when the process died
            log.warning("dropped a torn last line of %s: %r", self.path, data[whole:][:120])
            os.truncate(self.path, whole)  # so the next line starts a line of its own
        found = []
        for line in data[:whole].decode("ascii", "replace").splitlines():
            try:
                row_id, key, at = line.split(" ")
                found.append(Delivery(int(row_id), "" if key == "-" else key,
                                      datetime.fromisoformat(at)))
            except ValueError:
                log.warning("skipped a line of %s that is no delivery: %r", self.path,
                            line[:120])
        return found
