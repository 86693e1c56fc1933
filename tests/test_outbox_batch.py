"""The outbox claims due rows in batches and sends a batch over one relay connection,
recording each mail as it goes: against a real aiosmtpd relay on loopback, what one
refused recipient, a relay dying mid-batch, a slow relay and a crashed daemon's lease
do to the rows, and that no row goes out twice, with two workers on one database."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import event

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.outgoing import compose as mailout
from helpdesk.outgoing import outbox
from helpdesk.outgoing.outbox import OutboxWorker, Result
from helpdesk.store import db
from helpdesk.store.models import Outbox
from tests.conftest import MakeSettings
from tests.helpers import engine_for, free_port, outbox_rows, wait_until
from tests.tcpproxy import TcpProxy

REFUSED = "nobody@customer.test"


@dataclass
class RelayHandler:
    """A relay that refuses REFUSED at RCPT (550), can take its time over DATA, and can
    run a callback at the n-th DATA before answering (to die there)."""

    received: list[tuple[str, tuple[str, int], bytes]] = field(default_factory=list)
    sessions: set[tuple[str, int]] = field(default_factory=set)
    delay: float = 0.0
    on_data: dict[int, Callable[[], None]] = field(default_factory=dict)
    datas: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address == REFUSED:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.datas += 1
            callback = self.on_data.get(self.datas)
        if callback is not None:
            callback()  # e.g. the relay dies: this DATA gets no answer
            return "451 4.3.0 never heard"
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.received.append((envelope.rcpt_tos[0], session.peer,
                                  envelope.original_content or b""))
            self.sessions.add(session.peer)
        return "250 2.0.0 OK"

    def rcpts(self) -> Counter[str]:
        with self.lock:
            return Counter(rcpt for rcpt, _, _ in self.received)


@pytest.fixture
def relay_handler() -> Iterator[RelayHandler]:
    handler = RelayHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port  # type: ignore[attr-defined]
    yield handler
    controller.stop()


def relay_settings(make_settings: MakeSettings, port: int, **outgoing: Any) -> Settings:
    settings = make_settings({"outgoing": {"relay_host": "127.0.0.1", "relay_port": port,
                                           **outgoing}})
    db.upgrade(settings.database_url)
    return settings


def queue_acks(settings: Settings, rcpts: list[str]) -> list[int]:
    """One acknowledgement to each address, queued in this order; their ids."""
    with db.session_scope(engine_for(settings)) as session:
        rows = [mailout.queue(session, mailout.build(settings, to=[rcpt], subject="hello",
                                                     text=f"hi {rcpt}"),
                              kind="ack", ticket_id=None, mail_from="", automatic=True)
                for rcpt in rcpts]
        return [row.id for row in rows]


def _by_rcpt(settings: Settings) -> dict[str, Outbox]:
    return {row.rcpt_tos[0]: row for row in outbox_rows(settings)}


def customers(n: int) -> list[str]:
    return [f"c{i}@customer.test" for i in range(n)]


def test_one_refused_recipient_in_a_batch_kills_its_row_only_and_one_connection_carries_all(
    make_settings: MakeSettings, relay_handler: RelayHandler,
) -> None:
    settings = relay_settings(make_settings, relay_handler.port)  # type: ignore[attr-defined]
    rcpts = [*customers(3), REFUSED, *customers(6)[3:]]
    queue_acks(settings, rcpts)

    result = OutboxWorker(settings, engine_for(settings)).deliver_due()

    assert result == Result(sent=6, failed=0, dead=1)
    assert relay_handler.rcpts() == Counter(customers(6))
    assert len(relay_handler.sessions) == 1, "the refusal cost the batch its connection"
    rows = _by_rcpt(settings)
    dead = rows.pop(REFUSED)
    assert (dead.status, dead.attempts) == ("dead", 1)
    assert "550" in dead.last_error and "No such user here" in dead.last_error
    assert {(r.status, r.attempts, r.last_error) for r in rows.values()} == {("sent", 1, "")}


def test_a_relay_dying_mid_batch_keeps_what_it_took_retries_the_one_in_flight_and_leaves_the_rest(
    make_settings: MakeSettings, relay_handler: RelayHandler,
) -> None:
    proxy = TcpProxy(("127.0.0.1", relay_handler.port)).start()  # type: ignore[attr-defined]
    relay_handler.on_data[4] = proxy.stop  # the 4th mail's DATA: the relay is gone
    settings = relay_settings(make_settings, proxy.port)
    queue_acks(settings, customers(10))
    start = clock.now()
    clock.freeze(start)
    before = _by_rcpt(settings)
    worker = OutboxWorker(settings, engine_for(settings))
    try:
        result = worker.deliver_due()

        assert result == Result(sent=3, failed=1, dead=0)
        assert relay_handler.rcpts() == Counter(customers(3))
        rows = _by_rcpt(settings)
        assert all((rows[c].status, rows[c].attempts) == ("sent", 1) for c in customers(3))
        in_flight = rows["c3@customer.test"]  # sent, never answered: retried after backoff
        assert (in_flight.status, in_flight.attempts) == ("queued", 1)
        assert "relay connection failed" in in_flight.last_error
        assert in_flight.next_attempt_at == start + timedelta(seconds=0.2)
        for c in customers(10)[4:]:  # never tried: as they were, due at once
            assert (rows[c].status, rows[c].attempts, rows[c].last_error) == ("queued", 0, "")
            assert rows[c].next_attempt_at == before[c].next_attempt_at

        assert worker.deliver_due() == Result(sent=0, failed=1, dead=0)  # still down
        assert _by_rcpt(settings)["c4@customer.test"].attempts == 1
        assert [c for c, r in _by_rcpt(settings).items() if r.attempts == 0] == \
            customers(10)[5:], "a relay that is down stops the pass at the first row"

        proxy.start()  # the relay is back
        clock.freeze(start + timedelta(seconds=5))  # every backoff is over
        assert worker.deliver_due() == Result(sent=7, failed=0, dead=0)
    finally:
        proxy.stop()
    assert relay_handler.rcpts() == Counter(customers(10)), "each mail exactly once"
    assert {r.status for r in outbox_rows(settings)} == {"sent"}


def test_a_claimed_batch_is_leased_and_taken_again_only_when_the_lease_has_run_out(
    make_settings: MakeSettings, relay_handler: RelayHandler,
) -> None:
    settings = relay_settings(make_settings, relay_handler.port, lease=60)  # type: ignore[attr-defined]
    ids = queue_acks(settings, customers(5))
    start = clock.now()
    clock.freeze(start)
    engine = engine_for(settings)
    crashed = OutboxWorker(settings, engine)
    with engine.connect() as conn:  # ... and the process dies before sending any of them
        batch, _ = crashed._claim(conn, outbox.BATCH)
    assert [row.id for row in batch] == ids
    rows = outbox_rows(settings)
    assert {(r.status, r.attempts, r.next_attempt_at) for r in rows} == \
        {("sending", 1, start + timedelta(seconds=60))}

    other = OutboxWorker(settings, engine)
    assert other.deliver_due() == Result()
    clock.freeze(start + timedelta(seconds=59))
    assert other.deliver_due() == Result()
    assert relay_handler.received == []

    clock.freeze(start + timedelta(seconds=61))
    assert other.deliver_due() == Result(sent=5)
    assert relay_handler.rcpts() == Counter(customers(5))
    assert {(r.status, r.attempts) for r in outbox_rows(settings)} == {("sent", 2)}
    assert other.deliver_due() == Result()


def test_a_slow_relay_gets_the_rest_of_a_batch_under_a_fresh_lease(
    make_settings: MakeSettings, relay_handler: RelayHandler,
) -> None:
    """Sends start only in the first half of a lease (lease 2 s here: 1 s); what the
    relay had no time for is given back, claimed again, and still goes out once."""
    relay_handler.delay = 0.4
    settings = relay_settings(make_settings, relay_handler.port, lease=2)  # type: ignore[attr-defined]
    queue_acks(settings, customers(6))
    engine = engine_for(settings)
    leases: list[str] = []  # the statements that lease rows (attempts + 1)
    event.listen(engine, "before_cursor_execute", lambda conn, cursor, statement, *_:
                 leases.extend([statement] if "outbox.attempts +" in statement else []))
    result = OutboxWorker(settings, engine).deliver_due()

    assert result == Result(sent=6)
    assert relay_handler.rcpts() == Counter(customers(6))
    assert {(r.status, r.attempts) for r in outbox_rows(settings)} == {("sent", 1)}
    assert len(leases) >= 2, "the batch was not split by the send window"


def test_a_pass_claims_batch_after_batch_up_to_its_limit_with_about_one_statement_a_mail(
    make_settings: MakeSettings, relay_handler: RelayHandler,
) -> None:
    settings = relay_settings(make_settings, relay_handler.port)  # type: ignore[attr-defined]
    queue_acks(settings, customers(80))
    engine = engine_for(settings)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *_: statements.append(statement))
    worker = OutboxWorker(settings, engine)

    assert worker.deliver_due(limit=70) == Result(sent=70)
    # per batch (32, 32, 6): pick, lease, read; per mail: its "sent", a commit of its
    # own on PostgreSQL; on SQLite a line of the journal, the lines written as one
    # statement with the second and third claims and at the end of the pass
    records = 70 if engine.dialect.name == "postgresql" else 3
    assert len(statements) == records + 3 * 3
    assert len(relay_handler.sessions) == 1
    assert worker.deliver_due(limit=70) == Result(sent=10)
    assert relay_handler.rcpts() == Counter(customers(80))


def test_a_batch_holds_at_most_batch_bytes_of_mail_but_always_one_row(
    make_settings: MakeSettings, relay_handler: RelayHandler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = relay_settings(make_settings, relay_handler.port)  # type: ignore[attr-defined]
    queue_acks(settings, customers(5))
    size = len(outbox_rows(settings)[0].raw)
    engine = engine_for(settings)
    worker = OutboxWorker(settings, engine)
    monkeypatch.setattr(outbox, "BATCH_BYTES", 2 * size + 10)
    with engine.connect() as conn:
        assert len(worker._claim(conn, outbox.BATCH)[0]) == 2
    monkeypatch.setattr(outbox, "BATCH_BYTES", 1)
    with engine.connect() as conn:
        assert len(worker._claim(conn, outbox.BATCH)[0]) == 1


@pytest.mark.parametrize("database_url", ["sqlite", pytest.param(
    "postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_two_workers_on_one_database_never_send_a_row_twice(
    make_settings: MakeSettings, relay_handler: RelayHandler,
) -> None:
    """Each with an engine of its own, as two daemons: PostgreSQL's SKIP LOCKED, and on
    SQLite the lease's repeated condition, keep them off each other's rows."""
    settings = relay_settings(make_settings, relay_handler.port)  # type: ignore[attr-defined]
    queue_acks(settings, customers(150))
    engines = [db.make_engine(settings.database_url) for _ in range(2)]
    errors: list[BaseException] = []

    def unsent() -> int:
        return sum(r.status != "sent" for r in outbox_rows(settings))

    def work(engine: Any) -> None:
        worker = OutboxWorker(settings, engine)
        try:
            deadline = time.monotonic() + 60
            while unsent() and time.monotonic() < deadline:
                worker.deliver_due(limit=20)
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    for e in engines:
        e.dispose()
    assert errors == []
    wait_until(lambda: unsent() == 0, 5, what="every row sent")
    assert relay_handler.rcpts() == Counter(customers(150)), "a mail went out twice"
    assert {r.attempts for r in outbox_rows(settings)} == {1}
