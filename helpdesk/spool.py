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
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpdesk import clock
from helpdesk.durable import fsync_dir
from helpdesk.errors import TemporaryError

MAX_RECOVERIES = 3
_SUFFIX = ".mail"
_BUNDLE = ".bundle"
log = logging.getLogger("helpdesk.spool")


@dataclass(frozen=True)
class Envelope:
    """How a mail reached us: route (smtp, imap:NAME, ingest), sender, recipients."""

    route: str
    mail_from: str = ""
    rcpt_tos: tuple[str, ...] = ()
    received_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "mail_from": self.mail_from,
            "rcpt_tos": list(self.rcpt_tos),
            "received_at": self.received_at,
            "extra": self.extra,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=True).encode() + b"\n"

    @classmethod
    def from_json(cls, line: bytes) -> Envelope:
        return cls.from_dict(json.loads(line))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Envelope:
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


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.incoming = root / "incoming"
        self.work = root / "work"
        self.bad = root / "bad"
        self.bundles = root / "bundles"
        for d in (self.tmp, self.incoming, self.work, self.bad, self.bundles):
            d.mkdir(parents=True, exist_ok=True)
        self._sync_lock = threading.Condition()
        self._renamed = self._synced = 0
        self._syncing = False
        # names listed but not yet claimed: one directory listing serves many claims
        self._listed: list[str] = []
        self._told_unreadable: set[str] = set()  # bundles whose damage was logged

    def put(self, raw: bytes, envelope: Envelope) -> str:
        """Store a mail durably; returns the entry name. Raises TemporaryError on I/O failure."""
        name = self._new_name()
        try:
            self._write_synced(name, envelope, raw)
            os.rename(self.tmp / name, self.incoming / name)
            self._sync_incoming()
        except OSError as err:
            with contextlib.suppress(OSError):
                (self.tmp / name).unlink()
            raise TemporaryError(f"spool write failed: {err}") from err
        return name

    def put_bundle(self, items: list[tuple[bytes, Envelope]]) -> str:
        """Store a batch of mails durably in one file with one fsync (IMAP backlogs).

        The pipeline worker splits a bundle into ordinary entries before it claims
        anything (`unbundle`), so the per-mail fsyncs happen off the IMAP path. A crash
        while splitting leaves the bundle in place; splitting it again only makes
        duplicates, which the pipeline drops.
        """
        name = self._new_name().replace(_SUFFIX, _BUNDLE)
        try:
            received_at = clock.now().isoformat()  # one batch, one arrival time
            with open(self.tmp / name, "wb") as fh:
                for raw, envelope in items:
                    head = envelope.to_dict()
                    head["received_at"] = envelope.received_at or received_at
                    head["size"] = len(raw)
                    fh.write(json.dumps(head, ensure_ascii=True).encode() + b"\n")
                    fh.write(raw)
                    fh.write(b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(self.tmp / name, self.bundles / name)
            fsync_dir(self.bundles)
        except OSError as err:
            with contextlib.suppress(OSError):
                (self.tmp / name).unlink()
            raise TemporaryError(f"spool write failed: {err}") from err
        return name

    def unbundle(self) -> int:
        """Split waiting bundles into single entries; returns how many mails came out."""
        count = 0
        for path in sorted(self.bundles.iterdir()):
            try:
                items = _read_bundle(path.read_bytes())
            except (ValueError, KeyError) as err:
                os.rename(path, self.bad / path.name)
                log.error("spool bundle %s is unreadable (%s); set aside in bad/", path, err)
                continue
            for raw, envelope in items:
                self.put(raw, envelope)
            path.unlink()
            count += len(items)
        if count:
            self._listed = []
        return count

    @staticmethod
    def _new_name() -> str:
        # time first, so a listing sorts oldest-first; the uuid keeps names unique
        return f"{clock.now().timestamp():017.6f}-{uuid.uuid4().hex}.r0{_SUFFIX}"

    def _write_synced(self, name: str, envelope: Envelope, raw: bytes) -> None:
        envelope = _stamped(envelope)
        with open(self.tmp / name, "wb") as fh:
            fh.write(envelope.to_json())
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())

    def _sync_incoming(self) -> None:
        """Make our rename durable, sharing one directory fsync with concurrent puts.

        Group commit: a put that finds a sync already running waits for the next one,
        which covers every rename made before it started.
        """
        with self._sync_lock:
            self._renamed += 1
            mine = self._renamed
            while self._synced < mine:
                if self._syncing:
                    self._sync_lock.wait()
                    continue
                self._syncing = True
                target = self._renamed
                self._sync_lock.release()
                try:
                    fsync_dir(self.incoming)
                finally:
                    self._sync_lock.acquire()
                    self._syncing = False
                    self._sync_lock.notify_all()
                self._synced = max(self._synced, target)

    def pending(self) -> list[str]:
        return sorted(p.name for p in self.incoming.iterdir() if p.name.endswith(_SUFFIX))

    def waiting(self) -> int:
        """Mails acknowledged but not yet finished: in incoming/, in bundles, or in work/.

        Bundles are only split when the pipeline next lists the spool, so while the
        database is away an IMAP backlog waits there, not in incoming/; work/ holds the
        mail being processed (or retried) right now. A bundle being split at this
        moment may be counted twice for an instant; this is a gauge.
        """
        in_work = sum(1 for p in self.work.iterdir() if p.name.endswith(_SUFFIX))
        return (len(self.pending()) + in_work
                + sum(self._bundle_mails(p) for p in self.bundles.iterdir()))

    def _bundle_mails(self, path: Path) -> int:
        count, error = _bundle_count(path)
        if error and path.name not in self._told_unreadable:
            # once per bundle: the gauge is read every few seconds
            self._told_unreadable.add(path.name)
            log.warning("spool bundle %s is unreadable after %d mails (%s); counted as "
                        "that many until the pipeline sets it aside", path.name, count, error)
        return count

    def claim(self, name: str | None = None) -> Entry | None:
        """Take the oldest (or the named) entry; None when there is nothing to claim.

        The rename is atomic, so two workers never get the same entry.
        """
        if name:
            return self._take(name)
        for _ in range(2):
            if not self._listed:
                self.unbundle()
                self._listed = self.pending()
            while self._listed:
                entry = self._take(self._listed.pop(0))
                if entry is not None:
                    return entry
        return None

    def _take(self, name: str) -> Entry | None:
        dst = self.work / name
        try:
            os.rename(self.incoming / name, dst)
        except FileNotFoundError:
            return None  # another worker took it
        return self._read(dst)

    def _read(self, path: Path) -> Entry:
        data = path.read_bytes()
        line, _, raw = data.partition(b"\n")
        try:
            envelope = Envelope.from_json(line)
        except ValueError as err:
            # not ours to drop: the whole file goes on as the mail, its route unknown
            log.warning("spool entry %s has no readable envelope (%s); processing the "
                        "whole file as the mail", path.name, err)
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
        for partial in self.tmp.iterdir():
            # a put that crashed before its rename was never acknowledged: the sender
            # still has the mail and will send it again
            partial.unlink()
        for path in sorted(self.work.iterdir()):
            count = _recoveries(path.name) + 1
            if count > MAX_RECOVERIES:
                os.rename(path, self.bad / path.name)
                shunted += 1
                continue
            os.rename(path, self.incoming / _with_recoveries(path.name, count))
            recovered += 1
        if recovered or shunted:
            fsync_dir(self.incoming)
        return recovered, shunted

    def bad_entries(self) -> list[Path]:
        return sorted(self.bad.iterdir())

    def read_bad(self, path: Path) -> Entry:
        return self._read(path)


def _stamped(envelope: Envelope) -> Envelope:
    if envelope.received_at:
        return envelope
    return Envelope(envelope.route, envelope.mail_from, envelope.rcpt_tos,
                    clock.now().isoformat(), envelope.extra)


def _read_bundle(data: bytes) -> list[tuple[bytes, Envelope]]:
    items: list[tuple[bytes, Envelope]] = []
    pos = 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        head = json.loads(data[pos:end])
        size = int(head.pop("size"))
        raw = data[end + 1:end + 1 + size]
        if len(raw) != size:
            raise ValueError("bundle ends inside a mail")
        items.append((raw, Envelope.from_dict(head)))
        pos = end + 1 + size + 1
    return items


def _bundle_count(path: Path) -> tuple[int, str]:
    """How many mails a bundle holds, from its head lines alone: the bodies are skipped;
    and why the count stopped short ("" when it did not)."""
    count = 0
    try:
        with open(path, "rb") as fh:
            while line := fh.readline():
                fh.seek(int(json.loads(line)["size"]) + 1, os.SEEK_CUR)
                count += 1
    except FileNotFoundError:
        # split and removed since the listing: its mails are in incoming/ now
        log.debug("spool bundle %s split while being counted", path.name)
    except (ValueError, KeyError, TypeError) as err:
        # unreadable from here on: unbundle will set it aside in bad/ (and say so)
        return count, f"{type(err).__name__}: {err}"
    return count, ""


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
