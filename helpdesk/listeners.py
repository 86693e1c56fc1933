"""Binding the daemon's listening sockets, and saying in one line why one cannot be.

A second `helpdesk run` (or a mail server already on the port) must get one line
naming the listener, the address and, where it can be told, what holds it, not the
traceback of socket.create_server.
"""

from __future__ import annotations

import errno
import os
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpdesk.errors import ListenerError
from helpdesk.report.status import read_snapshot

PROBE_TIMEOUT_S = 2.0


@contextmanager
def explained(kind: str, host: str, port: int, data_dir: Path) -> Iterator[None]:
    """Around a bind: an OSError becomes ListenerError saying which `kind` (SMTP, LMTP,
    HTTP) could not listen where, and why."""
    try:
        yield
    except OSError as err:
        raise ListenerError(_describe(kind, host, port, data_dir, err)) from None


def _describe(kind: str, host: str, port: int, data_dir: Path, err: OSError) -> str:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if err.errno != errno.EADDRINUSE:
        return f"{kind} listener: cannot listen on {where}: {err.strerror or err}"
    hint = _other_daemon(data_dir) or (_greeting(host, port) if kind != "HTTP" else None)
    return f"{kind} listener: {where} is already in use" + (f"; {hint}" if hint else "")


def _other_daemon(data_dir: Path) -> str | None:
    """A helpdesk daemon on the same data_dir, known from its fresh status snapshot."""
    try:
        snapshot = read_snapshot(data_dir)
    except (OSError, KeyError, ValueError):
        return None  # unreadable: say nothing rather than guess
    if not snapshot or not snapshot.get("running"):
        return None
    pid = snapshot.get("pid")
    if not isinstance(pid, int) or pid == os.getpid() or not _alive(pid):
        return None
    return f"another helpdesk daemon (pid {pid}) is running on {data_dir}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _greeting(host: str, port: int) -> str | None:
    """What a mail server on the port says when connected to (an MTA names itself)."""
    try:
        with smtplib.SMTP(timeout=PROBE_TIMEOUT_S) as client:
            code, text = client.connect(host or "127.0.0.1", port)
    except (OSError, smtplib.SMTPException):
        return None
    return f"the server there greets with '{code} {text.decode(errors='replace')}'"
