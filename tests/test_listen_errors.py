"""A port that is already taken: `helpdesk run` says in one line which listener could
not bind which address, and by what when it can tell, and exits non-zero, before it
touches the spool."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from helpdesk.report.status import read_snapshot
from helpdesk.spool import Envelope, Spool
from tests.conftest import MakeSettings
from tests.helpers import RelaySink, free_port, make_mail, run_cli, wait_until
from tests.procs import DaemonProc

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _one_line(stderr: bytes) -> str:
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1, stderr.decode()
    return lines[0]


def test_second_daemon_names_the_taken_port_and_the_running_daemon(
        make_settings: MakeSettings, daemon_procs: Callable[..., DaemonProc]) -> None:
    port = free_port()
    settings = make_settings({"smtp": {"port": port}})
    first = daemon_procs(settings, "first").start()
    snapshot = wait_until(lambda: read_snapshot(settings.data_dir), 15,
                          what="the first daemon's status snapshot")

    second = run_cli(settings, "run", timeout=60)

    assert second.returncode != 0
    line = _one_line(second.stderr)
    assert f"SMTP listener: 127.0.0.1:{port} is already in use" in line, line
    assert (f"; another helpdesk daemon (pid {snapshot['pid']}) is running on "
            f"{settings.data_dir}") in line, line
    assert first.proc is not None and first.proc.poll() is None, "the first one runs on"
    assert first.terminate() == 0, first.log()


def test_lmtp_port_held_by_another_mail_server_shows_its_greeting(
        make_settings: MakeSettings, relay: RelaySink) -> None:
    settings = make_settings({"smtp": {"port": relay.port, "lmtp": True}})

    result = run_cli(settings, "run", timeout=60)

    assert result.returncode != 0
    line = _one_line(result.stderr)
    assert f"LMTP listener: 127.0.0.1:{relay.port} is already in use" in line, line
    assert "; the server there greets with '220 " in line, line


def test_http_port_taken_stops_the_start_before_the_spool_is_touched(
        make_settings: MakeSettings) -> None:
    smtp_port = free_port()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        http_port = taken.getsockname()[1]
        settings = make_settings({"smtp": {"port": smtp_port},
                                  "http": {"listen": f"127.0.0.1:{http_port}"}})
        # a mail in a running daemon's hands: a start that fails must leave it there
        spool = Spool(settings.data_dir / "spool")
        spool.put(make_mail().as_bytes(), Envelope("smtp", "carol@customer.test"))
        claimed = spool.claim()
        assert claimed is not None

        result = run_cli(settings, "run", timeout=30)

    assert result.returncode != 0
    line = _one_line(result.stderr)
    assert f"HTTP listener: 127.0.0.1:{http_port} is already in use" in line, line
    assert spool.pending() == [] and spool.waiting() == 1, "the claimed mail was recovered"
