"""On SQLite the outbox records a delivery as a line of its journal (fsynced) and writes
the lines into the database with its next claim, so that it need not wait for the
pipeline's write lock: acknowledgements flow while a backlog drains, and a crash still
doubles at most the one mail that was in flight. Real relay, real daemon, real kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import text

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.outgoing.outbox import OutboxWorker, Result
from tests.conftest import MakeSettings
from tests.helpers import (
    REPO,
    DaemonThread,
    RelaySink,
    engine_for,
    free_port,
    outbox_rows,
    spool_backlog,
    wait_until,
)
from tests.test_outbox_batch import customers, queue_acks, relay_settings

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class KillingRelay:
    """A relay that answers 250, except that at the `kill_at`-th DATA it kills the
    process named by `victim` (SIGKILL) before answering."""

    def __init__(self, kill_at: int) -> None:
        self.kill_at = kill_at
        self.victim = 0
        self.datas = 0
        self.accepted: list[str] = []  # recipients of the mails answered 250
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.datas += 1
            if self.datas == self.kill_at:
                os.kill(self.victim, signal.SIGKILL)
                return "451 4.3.0 the sender is gone"
            self.accepted.append(envelope.rcpt_tos[0])
        return "250 2.0.0 OK"


def _journal(settings: Settings) -> Path:
    return settings.data_dir / "outbox" / "sent.journal"


DELIVER = """
import sys
from helpdesk.config import settings as config
from helpdesk.outgoing.outbox import OutboxWorker
from helpdesk.store import db
settings = config.load(sys.argv[1])
OutboxWorker(settings, db.engine_for(settings)).deliver_due()
"""


@sqlite_only
def test_deliveries_only_the_journal_knew_of_when_the_process_was_killed_are_not_sent_again(
    make_settings: MakeSettings,
) -> None:
    relay = KillingRelay(kill_at=4)
    controller = Controller(relay, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        settings = relay_settings(make_settings, controller.port)
        queue_acks(settings, customers(6))
        child = subprocess.Popen([sys.executable, "-c", DELIVER, str(settings.source)],
                                 cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        relay.victim = child.pid
        assert child.wait(60) == -signal.SIGKILL
        # the relay took three mails; the database has not heard of them yet
        assert relay.accepted == customers(3)
        assert {r.status for r in outbox_rows(settings)} == {"sending"}
        assert len(_journal(settings).read_text().splitlines()) == 3

        # the killed process's lease runs out
        clock.freeze(clock.now() + timedelta(seconds=settings.outgoing.lease + 1))
        result = OutboxWorker(settings, engine_for(settings)).deliver_due()
    finally:
        controller.stop()

    # the journal's lines are written before anything is picked; the mail in flight
    # (no 250) goes out again
    assert result == Result(sent=3)
    assert Counter(relay.accepted) == Counter(customers(6)), "each mail accepted once"
    assert {r.status for r in outbox_rows(settings)} == {"sent"}
    assert _journal(settings).read_bytes() == b""


@sqlite_only
def test_a_torn_last_line_and_a_line_for_another_mail_under_the_same_id_record_nothing(
    make_settings: MakeSettings, relay: RelaySink,
) -> None:
    settings = relay_settings(make_settings, relay.port)
    queue_acks(settings, customers(3))
    first, second, third = sorted(outbox_rows(settings), key=lambda r: r.id)
    _journal(settings).parent.mkdir(parents=True, exist_ok=True)
    _journal(settings).write_text(
        f"{first.id} {first.msgid_key} 2026-12-06T10:00:00+00:00\n"  # sent: recorded, not resent
        f"{second.id} {'0' * 64} 2026-12-06T10:00:01+00:00\n"  # the id, but another mail's key
        f"{third.id} {third.msgid_key[:20]}")  # torn while written: the process died

    result = OutboxWorker(settings, engine_for(settings)).deliver_due()

    assert result == Result(sent=2)
    assert sorted(m.rcpt_tos[0] for m in relay.received) == customers(3)[1:]
    rows = {r.id: r for r in outbox_rows(settings)}
    assert {r.status for r in rows.values()} == {"sent"}
    assert rows[first.id].sent_at.isoformat() == "2026-12-06T10:00:00+00:00"
    assert _journal(settings).read_bytes() == b""


@sqlite_only
def test_acknowledgements_are_relayed_while_a_backlog_is_still_being_stored(
    settings_with_relay: Settings, relay: RelaySink,
) -> None:
    """The pipeline takes SQLite's write lock again the instant a batch commits; the
    outbox's claims get their turn between two batches instead of waiting for the end
    of the backlog (before: a few acknowledgements of 3,000 went out during the burst)."""
    settings = settings_with_relay
    n = 400
    spool_backlog(settings, n)
    engine = engine_for(settings)
    daemon = DaemonThread(settings).start()
    try:
        def stored() -> int:
            try:
                with engine.connect() as conn:
                    return conn.execute(text("SELECT count(*) FROM ticket")).scalar_one()
            except Exception:  # the schema may not be there yet
                return 0

        while stored() < n:
            time.sleep(0.02)
        relayed_by_then = len(relay.received)
        relay.wait_for(n, timeout=60)
    finally:
        daemon.stop()

    assert relayed_by_then >= n // 4, \
        f"only {relayed_by_then} of {n} acknowledgements relayed while the backlog was stored"
    wait_until(lambda: {r.status for r in outbox_rows(settings)} == {"sent"})


@sqlite_only
def test_a_second_worker_on_the_same_data_dir_leaves_the_journal_alone_and_commits_instead(
    make_settings: MakeSettings, relay: RelaySink,
) -> None:
    settings = relay_settings(make_settings, relay.port)
    first = OutboxWorker(settings, engine_for(settings))
    assert first.deliver_due() == Result()  # its first pass opens the journal
    assert first.journal is not None
    first.journal.add(999, "a" * 64, clock.now())  # a line only the first may record
    queue_acks(settings, customers(2))

    second = OutboxWorker(settings, engine_for(settings))

    assert second.deliver_due() == Result(sent=2)
    assert second.journal is None
    assert {r.status for r in outbox_rows(settings)} == {"sent"}
    assert _journal(settings).read_text().startswith("999 "), "the first one's line stays"
