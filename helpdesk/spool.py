"""The durable file queue every incoming mail enters first.

`put` writes a temp file, fsyncs it, renames it into incoming/ and fsyncs the
directory: only then may SMTP answer 250 or IMAP move the mail away. The
pipeline `claim`s an entry by renaming it into work/, and `finish`es it after
the database commit. On start, `recover` puts entries left in work/ by a crash
back into incoming/; an entry recovered too often goes to bad/ so a poison mail
cannot loop forever (Mailman's switchboard does the same with .bak files).

An entry file is one JSON line of envelope metadata, then the raw mail bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpdesk import clock
from helpdesk.errors import TemporaryError

MAX_RECOVERIES = 3
_SUFFIX = ".mail"


@dataclass(frozen=True)
class Envelope:
    """How a mail reached us: route (smtp, imap:NAME, ingest), sender, recipients."""

    route: str
    mail_from: str = ""
    rcpt_tos: tuple[str, ...] = ()
    received_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        data = {
            "route": self.route,
            "mail_from": self.mail_from,
            "rcpt_tos": list(self.rcpt_tos),
            "received_at": self.received_at,
            "extra": self.extra,
        }
        return json.dumps(data, ensure_ascii=True).encode() + b"\n"

    @classmethod
    def from_json(cls, line: bytes) -> Envelope:
        data = json.loads(line)
        return cls(
            route=data.get("route", "unknown"),
            mail_from=data.get("mail_from", ""),
            rcpt_tos=tuple(data.get("rcpt_tos", ())),
            received_at=data.get("received_at", ""),
            extra=data.get("extra") or {},
        )


@dataclass(frozen=True)
class Entry:
    """A claimed spool entry: its file in work/, the envelope and the raw bytes."""

    path: Path
    envelope: Envelope
    raw: bytes
    recoveries: int

    @property
    def name(self) -> str:
        return self.path.name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.incoming = root / "incoming"
        self.work = root / "work"
        self.bad = root / "bad"
        for d in (self.tmp, self.incoming, self.work, self.bad):
            d.mkdir(parents=True, exist_ok=True)

    def put(self, raw: bytes, envelope: Envelope) -> str:
        """Store a mail durably; returns the entry name. Raises TemporaryError on I/O failure."""
        if not envelope.received_at:
            envelope = Envelope(
                envelope.route, envelope.mail_from, envelope.rcpt_tos,
                clock.now().isoformat(), envelope.extra,
            )
        # time first, so a listing sorts oldest-first; the uuid keeps names unique
        name = f"{clock.now().timestamp():017.6f}-{uuid.uuid4().hex}.r0{_SUFFIX}"
        tmp = self.tmp / name
        try:
            with open(tmp, "wb") as fh:
                fh.write(envelope.to_json())
                fh.write(raw)
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(tmp, self.incoming / name)
            _fsync_dir(self.incoming)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise TemporaryError(f"spool write failed: {err}") from err
        return name

    def pending(self) -> list[str]:
        return sorted(p.name for p in self.incoming.iterdir() if p.name.endswith(_SUFFIX))

    def claim(self, name: str | None = None) -> Entry | None:
        """Take the oldest (or the named) entry; None when there is nothing to claim.

        The rename is atomic, so two workers never get the same entry.
        """
        names = [name] if name else self.pending()
        for candidate in names:
            src = self.incoming / candidate
            dst = self.work / candidate
            try:
                os.rename(src, dst)
            except FileNotFoundError:
                continue  # another worker took it
            return self._read(dst)
        return None

    def _read(self, path: Path) -> Entry:
        data = path.read_bytes()
        line, _, raw = data.partition(b"\n")
        try:
            envelope = Envelope.from_json(line)
        except ValueError:
            envelope, raw = Envelope(route="unknown"), data
        return Entry(path, envelope, raw, _recoveries(path.name))

    def finish(self, entry: Entry) -> None:
        """The mail is committed to the database: forget the entry."""
        entry.path.unlink(missing_ok=True)

    def release(self, entry: Entry) -> None:
        """Give an entry back untouched (e.g. the database is down): try again later."""
        os.rename(entry.path, self.incoming / entry.path.name)

    def retry(self, entry: Entry) -> int:
        """Put an entry back after a failure, counting it; returns the new count."""
        count = entry.recoveries + 1
        os.rename(entry.path, self.incoming / _with_recoveries(entry.path.name, count))
        return count

    def shunt(self, entry: Entry) -> Path:
        """Move an entry aside to bad/ when not even the quarantine table can take it."""
        target = self.bad / entry.path.name
        os.rename(entry.path, target)
        return target

    def recover(self) -> tuple[int, int]:
        """After a crash: put work/ entries back, bumping their count; too many go to bad/.

        Returns (recovered, shunted).
        """
        recovered = shunted = 0
        for path in sorted(self.work.iterdir()):
            count = _recoveries(path.name) + 1
            if count > MAX_RECOVERIES:
                os.rename(path, self.bad / path.name)
                shunted += 1
                continue
            os.rename(path, self.incoming / _with_recoveries(path.name, count))
            recovered += 1
        if recovered or shunted:
            _fsync_dir(self.incoming)
        return recovered, shunted

    def bad_entries(self) -> list[Path]:
        return sorted(self.bad.iterdir())

    def read_bad(self, path: Path) -> Entry:
        return self._read(path)


def _recoveries(name: str) -> int:
    stem = name.removesuffix(_SUFFIX)
    _, _, tail = stem.rpartition(".r")
    return int(tail) if tail.isdigit() else 0


def _with_recoveries(name: str, count: int) -> str:
    stem = name.removesuffix(_SUFFIX)
    base, sep, tail = stem.rpartition(".r")
    if not sep or not tail.isdigit():
        base = stem
    return f"{base}.r{count}{_SUFFIX}"
