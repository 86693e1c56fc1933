"""Two daemons, one PostgreSQL database, a burst of mail split between them (some
mails delivered to both): every mail stored once, every acknowledgement sent once."""

from __future__ import annotations

import smtplib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlmodel import select

from helpdesk.store import db
from helpdesk.store.models import Message
from tests.conftest import MakeSettings
from tests.helpers import RelaySink, drained, engine_for, free_port, make_mail, wait_until
from tests.procs import DaemonProc

BURST = 60


def _deliver(port: int, raw: bytes, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, ["support@example.test"], raw)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_burst_across_two_daemons(make_settings: MakeSettings, relay: RelaySink,
                                  daemon_procs: Callable[..., DaemonProc],
                                  tmp_path: Path) -> None:
    def settings_for(name: str):  # type: ignore[no-untyped-def]
        return make_settings({
            "helpdesk": {"data_dir": str(tmp_path / name)},
            "smtp": {"port": free_port()},
            "outgoing": {"relay_host": "127.0.0.1", "relay_port": relay.port},
        }, name=name)

    a, b = settings_for("a"), settings_for("b")
    db.upgrade(a.database_url)  # both would migrate at start; do it once, up front
    procs = [daemon_procs(s, name).start() for s, name in ((a, "a"), (b, "b"))]

    jobs = []
    for i in range(BURST):
        sender = f"c{i}@customer.test"
        raw = make_mail(sender=sender, subject=f"Burst {i}").as_bytes()
        ports = [(a, b)[i % 2].smtp.port] if i % 3 else [a.smtp.port, b.smtp.port]
        jobs.extend((port, raw, sender) for port in ports)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda job: _deliver(*job), jobs))

    engine = engine_for(a)
    wait_until(lambda: drained(a) and drained(b) and len(relay.received) >= BURST, 90,
               interval=0.2, what="both daemons to store and acknowledge all")
    for proc in procs:
        assert proc.terminate() == 0, proc.log()

    with db.session_scope(engine) as session:
        stored = Counter(session.exec(select(Message.message_id)
                                      .where(Message.direction == "in")).all())
    assert len(stored) == BURST and set(stored.values()) == {1}
    acks = Counter(r.message["In-Reply-To"] for r in relay.received)
    assert len(acks) == BURST and set(acks.values()) == {1}, acks.most_common(3)
    # both daemons did some of the work (the split was real)
    assert all("stored " in proc.log() for proc in procs)
