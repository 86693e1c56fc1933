"""systemd: the unit files verify, readiness is reported over NOTIFY_SOCKET, and an
inherited listening socket (socket activation) is used instead of binding."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import MakeSettings, need_server
from tests.helpers import REPO, all_tickets, free_port, make_mail, send, wait_until
from tests.procs import DaemonProc

UNITS = REPO / "systemd"


def test_units_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        need_server("systemd-analyze not installed (scripts/test installs systemd)")
    # verify resolves ExecStart: put a stand-in `helpdesk` where the unit expects it
    root = tmp_path / "root"
    for unit in ("helpdesk.service", "helpdesk.socket"):
        text = (UNITS / unit).read_text().replace("/usr/local/bin/helpdesk",
                                                  str(tmp_path / "helpdesk"))
        (tmp_path / unit).write_text(text)
    (tmp_path / "helpdesk").write_text("#!/bin/sh\n")
    (tmp_path / "helpdesk").chmod(0o755)
    root.mkdir()
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no",
         str(tmp_path / "helpdesk.socket"), str(tmp_path / "helpdesk.service")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # warnings about our units (not about the host's) count as failures too
    ours = [line for line in result.stderr.splitlines() if "helpdesk" in line]
    assert not ours, "\n".join(ours)


def _notify_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)
    return sock


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ready_then_stopping_over_notify_socket(
        make_settings: MakeSettings, daemon_procs: Callable[..., DaemonProc],
        tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings({"smtp": {"port": port}})
    with _notify_socket(tmp_path / "notify") as notify:
        proc = daemon_procs(settings).spawn(env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
        ready = notify.recv(4096).decode()
        assert ready.startswith("READY=1"), ready
        # READY=1 came after the listener was up: the very next connection is answered
        assert proc.answers(port)
        proc.signal(15)
        assert notify.recv(4096) == b"STOPPING=1"
        assert proc.proc is not None and proc.proc.wait(60) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("separate_process", [True, False])
def test_socket_activation_uses_inherited_fd3(
        make_settings: MakeSettings, daemon_procs: Callable[..., DaemonProc],
        separate_process: bool) -> None:
    configured = free_port()
    settings = make_settings({"smtp": {"port": configured, "separate_process": separate_process}})
    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]
        proc = daemon_procs(settings).start(port=port, listen_fd=listening.fileno())
    # systemd's socket, not one of its own: the configured port was never bound
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", configured), timeout=2).close()
    send(port, make_mail(subject="Via the activated socket"))
    wait_until(lambda: [t["subject"] for t in all_tickets(settings)], what="the ticket")
    assert proc.terminate() == 0
