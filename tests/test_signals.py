"""SIGTERM drains (exit 0, nothing acknowledged is lost); SIGHUP reloads templates and
rules. The daemon is a real process; its JSON-lines log is parsed as it goes."""

from __future__ import annotations

import smtplib
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import select

from helpdesk.store import db
from helpdesk.store.models import Message
from tests.conftest import MakeSettings
from tests.helpers import (
    RelaySink,
    engine_for,
    free_port,
    make_mail,
    run_pipeline,
    send,
    wait_until,
)
from tests.procs import DaemonProc

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
SENDERS = 4
TERM_AFTER = 30
DRAIN_BOUND_S = 45.0


def _sender(port: int, n: int, acked: list[str], started: threading.Event) -> None:
    """Send until the daemon refuses or hangs up; record each Message-ID that got 250."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            for i in range(10_000):
                msg = make_mail(sender=f"s{n}-{i}@customer.test", subject=f"Burst {n}/{i}")
                client.sendmail(f"s{n}-{i}@customer.test", ["support@example.test"],
                                msg.as_bytes())
                acked.append(msg["Message-ID"].strip("<>"))
                started.set()
    except (smtplib.SMTPException, OSError):
        return  # refused (421) or disconnected: the daemon is stopping


def _stored(settings) -> Counter[str]:  # type: ignore[no-untyped-def]
    with db.session_scope(engine_for(settings)) as session:
        rows = session.exec(select(Message.message_id).where(Message.direction == "in")).all()
    return Counter(r.strip("<>") for r in rows)


def test_sigterm_drains_and_exits_zero(make_settings: MakeSettings,
                                       daemon_procs: Callable[..., DaemonProc]) -> None:
    settings = make_settings({"smtp": {"port": free_port()}, "log": {"json": True}})
    proc = daemon_procs(settings).start()
    acked: list[str] = []
    started = threading.Event()
    threads = [threading.Thread(target=_sender, args=(settings.smtp.port, n, acked, started))
               for n in range(SENDERS)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= TERM_AFTER, 60, what=f"{TERM_AFTER} acknowledged mails")
    began = time.monotonic()
    code = proc.terminate(timeout=DRAIN_BOUND_S + 15)
    took = time.monotonic() - began
    for t in threads:
        t.join(30)
    assert code == 0, proc.log()
    assert took < DRAIN_BOUND_S, f"drain took {took:.1f}s"

    # what got 250 is stored, or still in the spool for the next start: finish it here
    run_pipeline(settings)
    stored = _stored(settings)
    assert set(acked) <= set(stored), f"lost: {set(acked) - set(stored)}"
    assert max(stored.values()) == 1

    lines = proc.json_log()  # every line parses as JSON
    events = [r for r in lines if r["message"].startswith("stored ")]
    assert events and all(r["ticket"].startswith("HD-") and r["message_id"] for r in events)
    assert {r["message_id"] for r in events} <= set(stored)
    assert lines[-1]["message"] == "stopped"


def test_sighup_reloads_templates(make_settings: MakeSettings, relay: RelaySink,
                                  daemon_procs: Callable[..., DaemonProc],
                                  tmp_path: Path) -> None:
    site = tmp_path / "site-templates"
    site.mkdir()
    settings = make_settings({"smtp": {"port": free_port()}, "log": {"json": True},
                              "paths": {"templates": str(site)},
                              "outgoing": {"relay_host": "127.0.0.1",
                                           "relay_port": relay.port}})
    proc = daemon_procs(settings).start()
    send(settings.smtp.port, make_mail(sender="a@customer.test"), sender="a@customer.test")
    first = relay.wait_for(1)[0].message["Subject"]
    assert "Site acknowledgement" not in first

    # a site template shadowing the packaged one is only seen after a reload
    (site / "ack.subject.j2").write_text("Site acknowledgement {{ ticket_id }}\n")
    proc.signal(1)
    wait_until(lambda: any(r["message"] == "reloaded" for r in proc.json_log()),
               what="the reload")
    send(settings.smtp.port, make_mail(sender="b@customer.test"), sender="b@customer.test")
    second = relay.wait_for(2)[1].message["Subject"]
    assert second == "Site acknowledgement HD-2"
    assert proc.terminate() == 0
