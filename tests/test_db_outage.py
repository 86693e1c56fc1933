"""A database outage delays mail; it never loses it and never refuses it.

The daemon talks to the real PostgreSQL through a loopback TCP proxy that the test
stops, restarts or makes drop connections. SMTP keeps answering 250 (the mail waits
in the spool); `helpdesk ingest` answers 75 so the MTA retries; when the database is
back every waiting mail becomes exactly one ticket with exactly one acknowledgement.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from helpdesk.config import settings as config
from helpdesk.config.settings import Settings
from helpdesk.spool import MAX_RECOVERIES
from helpdesk.store import db
from helpdesk.store.models import Message, Quarantine
from tests.conftest import write_toml
from tests.helpers import (
    DaemonThread,
    RelaySink,
    make_mail,
    run_cli,
    send,
    wait_drained,
    wait_until,
)
from tests.tcpproxy import TcpProxy

PG_ADDRESS = ("127.0.0.1", 5432)


@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    p = TcpProxy(PG_ADDRESS).start()
    yield p
    p.stop()


@pytest.fixture
def database_url(pg_url: str, proxy: TcpProxy) -> str:
    """The daemon's URL goes through the proxy (overrides conftest's sqlite/postgresql)."""
    return pg_url.replace(f":{PG_ADDRESS[1]}/", f":{proxy.port}/", 1)


@pytest.fixture
def direct(pg_url: str) -> Iterator[Engine]:
    """The test's own way to the database, past the proxy."""
    db.upgrade(pg_url)
    engine = db.make_engine(pg_url)
    yield engine
    engine.dispose()


def stored(engine: Engine) -> Counter[str]:
    with db.session_scope(engine) as session:
        return Counter(session.exec(select(Message.message_id)).all())


def quarantined(engine: Engine) -> list[Quarantine]:
    with db.session_scope(engine) as session:
        return list(session.exec(select(Quarantine)).all())


def spooled(settings: Settings) -> list[str]:
    spool = settings.data_dir / "spool"
    return [p.name for sub in ("incoming", "work") for p in (spool / sub).iterdir()]


def acks_for(relay: RelaySink) -> Counter[str]:
    return Counter(str(r.message["In-Reply-To"]).strip("<>") for r in relay.received)


def test_with_the_database_down_at_start_smtp_answers_250_and_ingest_answers_75(
    proxy: TcpProxy, settings_with_relay: Settings, relay: RelaySink, direct: Engine,
    start_daemon: Callable[..., DaemonThread], caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_with_relay
    proxy.stop()
    daemon = start_daemon(settings)  # migrations fail; the daemon starts anyway
    assert "database unavailable at start" in caplog.text

    def pipeline_waits() -> int:
        return sum(r.getMessage().startswith("pipeline waiting") for r in caplog.records)

    waits = pipeline_waits()
    send(daemon.port, make_mail(message_id="<waiting@customer.test>"))
    piped = make_mail(sender="dave@customer.test", message_id="<piped@customer.test>")
    result = run_cli(settings, "ingest", stdin=piped.as_bytes())
    assert result.returncode == 75, result.stderr.decode()
    assert b"storage unavailable" in result.stderr

    # the pipeline has tried since the mail came (the send woke it) and waits again
    wait_until(lambda: pipeline_waits() > waits, timeout=20,
               what="the pipeline to try and wait for the database")
    assert len(spooled(settings)) == 1, "the SMTP mail waits in the spool"
    assert stored(direct) == Counter()

    proxy.start()
    wait_until(lambda: acks_for(relay)["waiting@customer.test"], timeout=20,
               what="the waiting mail to be acknowledged")
    result = run_cli(settings, "ingest", stdin=piped.as_bytes())  # the MTA's retry
    assert result.returncode == 0, result.stderr.decode()
    wait_until(lambda: acks_for(relay)["piped@customer.test"], timeout=20,
               what="the piped mail to be acknowledged")

    wait_drained(settings, timeout=20)  # anything else queued or spooled is done with
    assert stored(direct) == Counter({"waiting@customer.test": 1, "piped@customer.test": 1})
    assert acks_for(relay) == Counter({"waiting@customer.test": 1, "piped@customer.test": 1})
    assert spooled(settings) == []
    assert quarantined(direct) == []


@pytest.mark.parametrize("outage", ["refused", "dropped"])
def test_an_outage_while_running_defers_mail_without_counting_it_as_a_failure(
    outage: str, proxy: TcpProxy, settings_with_relay: Settings, relay: RelaySink,
    direct: Engine, start_daemon: Callable[..., DaemonThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_with_relay
    daemon = start_daemon(settings)
    send(daemon.port, make_mail(sender="a@customer.test", message_id="<before@customer.test>"))
    relay.wait_for(1)

    if outage == "refused":
        proxy.stop()  # the server is gone: connections are refused
    else:
        proxy.drop = True  # connections are accepted, then cut
        proxy.cut()
    during = [f"during-{i}@customer.test" for i in range(4)]
    for i, msgid in enumerate(during):
        send(daemon.port, make_mail(sender=f"c{i}@customer.test", message_id=f"<{msgid}>"))
    # more deferrals than MAX_RECOVERIES: an outage must not count as a failure
    wait_until(lambda: len([r for r in caplog.records
                            if r.getMessage().startswith("deferred ")]) > MAX_RECOVERIES,
               timeout=30, what="more deferrals than MAX_RECOVERIES")
    assert len(spooled(settings)) == len(during)
    assert set(stored(direct)) == {"before@customer.test"}

    if outage == "refused":
        proxy.start()
    else:
        proxy.drop = False
    wait_until(lambda: all(acks_for(relay)[m] for m in during), timeout=30,
               what="the mails spooled during the outage to be acknowledged")

    wait_drained(settings, timeout=20)
    assert stored(direct) == Counter({m: 1 for m in ["before@customer.test", *during]})
    assert acks_for(relay) == Counter({m: 1 for m in ["before@customer.test", *during]})
    assert quarantined(direct) == []
    assert spooled(settings) == []
    assert list((settings.data_dir / "spool" / "bad").iterdir()) == []


def test_ingest_into_a_fresh_data_dir_stores_the_mail_instead_of_answering_75(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "fresh" / "data"  # nothing has created it yet
    path = tmp_path / "helpdesk.toml"
    write_toml(path, {"helpdesk": {"address": "support@example.test",
                                   "domains": ["example.test"], "data_dir": str(data_dir),
                                   "secret": "test-secret"}})
    settings = config.load(path)
    result = run_cli(settings, "ingest", stdin=make_mail().as_bytes())
    assert result.returncode == 0, result.stderr.decode()
    assert b"stored HD-1" in result.stdout
