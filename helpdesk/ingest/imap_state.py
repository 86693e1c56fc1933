"""What an IMAP poller remembers (UIDVALIDITY + last handled UID) and what it reports.

The state file is small JSON, written temp-file-fsync-rename like the spool. It
is keyed by server, user and folder: pointing a mailbox entry elsewhere starts
afresh instead of skipping mail by a stale UID.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from helpdesk.durable import write_atomic

log = logging.getLogger("helpdesk.ingest.imap")


def state_path(state_dir: Path, name: str) -> Path:
    return state_dir / f"imap-{name}.json"


def identity(username: str, host: str, port: int, folder: str) -> str:
    return f"{username}@{host}:{port}/{folder}"


@dataclass(frozen=True)
class MailboxState:
    uidvalidity: int | None = None
    last_uid: int = 0  # every UID <= last_uid is handled (stored, then moved/flagged/deleted)


class StateFile:
    def __init__(self, path: Path, identity: str) -> None:
        self.path = path
        self.identity = identity

    def load(self) -> MailboxState:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return MailboxState()
        except (OSError, ValueError) as err:
            # rescan; downstream dedupe absorbs the repeats
            log.warning("imap state file %s unreadable (%s); rescanning the mailbox",
                        self.path, err)
            return MailboxState()
        if data.get("identity") != self.identity:
            return MailboxState()
        return MailboxState(data.get("uidvalidity"), int(data.get("last_uid", 0)))

    def save(self, state: MailboxState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"identity": self.identity, "uidvalidity": state.uidvalidity,
                "last_uid": state.last_uid}
        write_atomic(self.path, json.dumps(data).encode())


@dataclass(frozen=True)
class PollerStatus:
    """A snapshot for `helpdesk status` and health checks."""

    name: str
    state: str = "starting"  # starting, connecting, idle, polling, fetching, backoff, stopped
    connected: bool = False
    idle_offered: bool | None = None
    last_contact: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    stalled_since: datetime | None = None  # set while an unreached-mailbox alert is active
    spooled: int = 0
    quarantined: int = 0
    backlog: int = 0
    errors: int = 0  # faults since start, for the helpdesk_imap_errors metric
    uidvalidity: int | None = None
    last_uid: int = 0

    @property
    def healthy(self) -> bool:
        return self.connected and self.stalled_since is None


class StatusBox:
    """Thread-safe holder: the poller thread updates, any thread reads."""

    def __init__(self, name: str) -> None:
        self._lock = threading.Lock()
        self._status = PollerStatus(name)

    def get(self) -> PollerStatus:
        with self._lock:
            return self._status

    def update(self, **changes: Any) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)

    def add(self, field: str, n: int) -> None:
        with self._lock:
            value = getattr(self._status, field) + n
            self._status = replace(self._status, **{field: value})
