"""The daemon's log at the default level carries helpdesk's events, not the chatter of
the libraries under it: APScheduler's two INFO lines per pass appear only when the
user asks for DEBUG."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from tests.conftest import MakeSettings
from tests.helpers import engine_for, free_port, wait_until
from tests.procs import DaemonProc

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
PASSES = 3


def _run_passes(make_settings: MakeSettings, daemon_procs: Callable[..., DaemonProc],
                log: dict[str, Any]) -> list[dict[str, Any]]:
    """A daemon whose scheduler passes every second, stopped after PASSES passes; its log."""
    settings = make_settings({"smtp": {"port": free_port()}, "scheduler": {"interval": "1s"},
                              "log": {"json": True, **log}})
    proc = daemon_procs(settings).start()

    def next_run() -> float | None:
        try:
            with engine_for(settings).connect() as conn:
                return conn.execute(text("SELECT next_run_time FROM apscheduler_jobs")).scalar()
        except OperationalError:
            return None  # the scheduler has not made its table yet

    first = wait_until(next_run, 30, what="the scheduled job to be stored")
    wait_until(lambda: (next_run() or 0) >= first + PASSES, 30, what=f"{PASSES} more passes")
    assert proc.terminate() == 0, proc.log()
    return proc.json_log()


def test_scheduler_passes_log_nothing_from_apscheduler_at_the_default_level(
        make_settings: MakeSettings, daemon_procs: Callable[..., DaemonProc]) -> None:
    lines = _run_passes(make_settings, daemon_procs, {})

    chatter = [r["message"] for r in lines if r["logger"].startswith("apscheduler")]
    assert chatter == []
    assert any(r["logger"].startswith("helpdesk") for r in lines)  # the log itself works


def test_apscheduler_speaks_when_the_user_asks_for_debug(
        make_settings: MakeSettings, daemon_procs: Callable[..., DaemonProc]) -> None:
    lines = _run_passes(make_settings, daemon_procs, {"level": "DEBUG"})

    ran = [r for r in lines if r["logger"].startswith("apscheduler")
           and "executed successfully" in r["message"]]
    assert len(ran) >= PASSES, [r["message"] for r in lines if "apscheduler" in r["logger"]]
