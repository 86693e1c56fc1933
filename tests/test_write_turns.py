"""The writers of one process take turns at SQLite's write lock, first come first served
(helpdesk/store/turns.py): a write asked for while the pipeline works through a backlog
waits for the batch in progress, not for a lucky gap between batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import event, text

from helpdesk.config.settings import Settings
from helpdesk.store.turns import WriteTurns
from tests.helpers import DaemonThread, RelaySink, engine_for, spool_backlog, wait_until

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _in_thread(fn: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def test_turns_are_given_in_the_order_they_were_asked_for() -> None:
    turns = WriteTurns()
    assert turns.acquire(1.0)
    order: list[str] = []

    def writer(name: str) -> Callable[[], None]:
        def run() -> None:
            assert turns.acquire(10.0)
            order.append(name)
            turns.release()
        return run

    waiting = []
    for name in ("outbox", "desk", "pipeline"):
        waiting.append(_in_thread(writer(name)))
        asked = len(waiting)
        wait_until(lambda: len(turns._waiting) == asked, timeout=5)  # noqa: B023
    turns.release()
    for thread in waiting:
        thread.join(5)
    assert order == ["outbox", "desk", "pipeline"]


def test_a_turn_not_given_in_time_is_not_waited_for_and_the_line_moves_on() -> None:
    turns = WriteTurns()
    assert turns.acquire(1.0)
    got: list[bool] = []
    impatient = _in_thread(lambda: got.append(turns.acquire(0.2)))
    wait_until(lambda: len(turns._waiting) == 1, timeout=5)
    patient = _in_thread(lambda: got.append(turns.acquire(10.0)))
    impatient.join(5)
    assert got == [False]  # it goes on to SQLite's own busy handler
    turns.release()
    patient.join(5)
    assert got == [False, True]


def test_a_thread_holding_a_turn_does_not_wait_for_itself() -> None:
    turns = WriteTurns()
    assert turns.acquire(1.0)
    started = time.monotonic()
    assert turns.acquire(5.0) is False
    assert time.monotonic() - started < 1.0


@sqlite_only
def test_a_write_during_a_backlog_waits_for_the_batch_in_progress_not_for_a_gap(
    settings_with_relay: Settings, relay: RelaySink,
) -> None:
    settings = settings_with_relay
    spool = spool_backlog(settings, 1200)
    engine = engine_for(settings)  # this process's engine: it takes turns like the daemon's
    daemon = DaemonThread(settings).start()
    batches = 0

    def committed(_conn: object) -> None:
        nonlocal batches
        batches += 1

    event.listen(daemon.daemon.pipeline.writer, "commit", committed)
    try:
        wait_until(lambda: batches >= 2, timeout=30, what="the pipeline at work")
        passed = []  # batches committed while each write waited for the lock
        for _ in range(6):
            before = batches
            with engine.begin() as conn:  # an agent's action on the desk, say
                conn.execute(text("UPDATE ticket SET updated_at = updated_at WHERE id = 1"))
            passed.append(batches - before)
            time.sleep(0.1)
        still_working = spool.waiting() > 0
    finally:
        event.remove(daemon.daemon.pipeline.writer, "commit", committed)
        daemon.stop()

    # the batch in progress, and at most the one that asked just before this write
    assert max(passed) <= 2, f"batches committed while a write waited: {passed}"
    assert still_working, "the backlog was gone before the writes: make it longer"
