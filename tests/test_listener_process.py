"""The SMTP listener process (helpdesk/ingest/smtp_process.py) runs on the settings the
daemon hands it, and stays small (issue #18: the whole daemon under 150 MiB): it never
imports pydantic (the settings schema) nor any later stage of the mail's path."""

from __future__ import annotations

import json
import smtplib
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from helpdesk.ingest.smtp_process import ListenerProcess, listener_settings
from tests.conftest import MakeSettings
from tests.helpers import make_mail, send, spool_entries, wait_until

REPO = Path(__file__).resolve().parent.parent
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# the child's own main(), its stdin a pipe at end of file at once: it starts, says "ready", stops;
# then the modules it had imported
PROBE = """
import sys
from helpdesk.ingest import smtp_process
smtp_process.main(sys.argv[1:])
print(" ".join(sorted(sys.modules)))
"""


@sqlite_only
def test_listener_imports_neither_pydantic_nor_the_pipeline(make_settings: MakeSettings) -> None:
    settings = make_settings()
    with socket.create_server(("127.0.0.1", 0)) as sock:
        fd = sock.fileno()
        out = subprocess.run(
            [sys.executable, "-c", PROBE, "--settings", json.dumps(listener_settings(settings)),
             "--fd", str(fd)],
            pass_fds=[fd], input="", capture_output=True, text=True,
            cwd=REPO, check=True, timeout=60).stdout
    ready, modules = out.splitlines()[0], set(out.splitlines()[-1].split())
    assert ready == "ready"
    assert "helpdesk.ingest.smtp" in modules  # it did start the listener
    heavy = {m for m in modules if m.split(".")[0] in ("pydantic", "pydantic_core", "sqlalchemy")
             or m.startswith(("helpdesk.config", "helpdesk.store", "helpdesk.mail"))}
    assert not heavy, sorted(heavy)


@sqlite_only
def test_listener_process_runs_on_the_daemons_settings(make_settings: MakeSettings) -> None:
    # values that differ from the defaults, so each is seen to reach the child
    settings = make_settings({"helpdesk": {"domains": ["example.test", "other.test"]},
                              "smtp": {"max_recipients": 2}})
    spooled = threading.Event()
    listener = ListenerProcess(settings, spooled.set)
    listener.start()
    try:
        with smtplib.SMTP("127.0.0.1", listener.port, timeout=30) as client:
            client.ehlo()
            assert client.mail("carol@customer.test")[0] == 250
            assert client.rcpt("support@other.test")[0] == 250  # [helpdesk] domains
            assert client.rcpt("nobody@elsewhere.test")[0] == 550
            assert client.rcpt("billing@example.test")[0] == 250
            assert client.rcpt("sales@example.test")[0] == 452  # [smtp] max_recipients
            client.rset()
        send(listener.port, make_mail(subject="Through the listener process"))
        assert spooled.wait(30)
        # [helpdesk] data_dir: the mail is in the daemon's spool
        wait_until(lambda: spool_entries(settings, "incoming"), what="the spooled mail")
    finally:
        listener.stop()
    assert not listener.alive
