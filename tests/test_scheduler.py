"""The scheduler in the daemon: after downtime what fell due runs once; with two
daemons (or two runners racing) on one PostgreSQL database, steps happen once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.schedule import sweep as jobs
from helpdesk.schedule.service import Leader, PassRunner
from tests.conftest import MakeSettings
from tests.helpers import REPO, DaemonThread, engine_for, ticket_row, wait_until
from tests.sched import (
    SLA,
    at,
    mails,
    make_ticket,
    run_due_cli,
    run_pass,
    set_status,
    step_keys,
    with_agents,
)

BOTH_STEPS = ["sla:first_response:0:warn", "sla:first_response:0:breach"]


def sched_settings(make_settings: MakeSettings) -> Settings:
    return with_agents(make_settings({"sla": SLA, "scheduler": {"interval": "1s"}}))


def test_daemon_stopped_across_the_due_time_runs_the_steps_once_after_restart(
        make_settings: MakeSettings, start_daemon: Callable[..., DaemonThread]):
    settings = sched_settings(make_settings)
    tid = make_ticket(settings, at("2026-11-30T09:00"))
    clock.freeze(at("2026-11-30T09:10"))
    first = start_daemon(settings)
    runner = first.daemon.scheduler.runner
    wait_until(lambda: runner.passes >= 1, what="the start-up pass")
    first.stop()
    assert step_keys(settings, tid) == []

    clock.freeze(at("2026-11-30T11:00"))  # warning and breach both fell due while down
    second = start_daemon(settings)
    runner = second.daemon.scheduler.runner
    wait_until(lambda: step_keys(settings, tid) == BOTH_STEPS, what="the catch-up pass")
    wait_until(lambda: runner.passes >= 3, what="two more passes")
    assert len(mails(settings, "sla-warning")) == 1
    assert len(mails(settings, "sla-breach")) == 1
    with engine_for(settings).connect() as conn:  # one stored job, however often restarted
        assert conn.execute(text("SELECT id FROM apscheduler_jobs")).scalars().all() == [
            "helpdesk-pass"]



@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_two_daemons_in_one_process_each_run_their_own_passes(
        make_settings: MakeSettings, start_daemon: Callable[..., DaemonThread],
        tmp_path: Path):
    def settings_for(name: str) -> Settings:
        (tmp_path / name).mkdir()
        return with_agents(make_settings({
            "helpdesk": {"data_dir": str(tmp_path / name),
                         "database_url": f"sqlite:///{tmp_path / name / 'helpdesk.db'}"},
            "sla": SLA, "scheduler": {"interval": "1s"}}, name=name))

    both = [settings_for("a"), settings_for("b")]
    tids = [make_ticket(s, at("2026-11-30T09:00")) for s in both]
    clock.freeze(at("2026-11-30T11:00"))
    runners = [start_daemon(s).daemon.scheduler.runner for s in both]
    for runner, name in zip(runners, "ab", strict=True):
        wait_until(lambda r=runner: r.passes >= 2, what=f"two passes of daemon {name}")
    for settings, tid in zip(both, tids, strict=True):  # each on its own database
        assert step_keys(settings, tid) == BOTH_STEPS
        assert len(mails(settings, "sla-warning")) == 1
        assert len(mails(settings, "sla-breach")) == 1


PG_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@PG_ONLY
def test_two_runners_racing_on_postgresql_do_each_step_once(make_settings: MakeSettings):
    settings = with_agents(make_settings({"sla": SLA}))
    ids = [make_ticket(settings, at("2026-11-30T09:00")) for _ in range(20)]
    now = at("2026-11-30T11:00")
    clock.freeze(now)
    barrier = threading.Barrier(3)
    results: list[list[str]] = []

    def race() -> None:
        barrier.wait()
        # no leader lock here on purpose: the step marks alone must prevent doubles
        results.append(jobs.run_pass(settings, engine_for(settings), now).done)

    threads = [threading.Thread(target=race) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(len(r) for r in results) == 2 * len(ids)
    assert len(mails(settings, "sla-warning")) == len(ids)
    assert len(mails(settings, "sla-breach")) == len(ids)
    assert all(step_keys(settings, t) == BOTH_STEPS for t in ids)


@PG_ONLY
def test_only_the_advisory_lock_holder_runs_passes(make_settings: MakeSettings):
    settings = with_agents(make_settings({"sla": SLA}))
    make_ticket(settings, at("2026-11-30T09:00"))
    clock.freeze(at("2026-11-30T11:00"))
    one, two = (PassRunner(settings, engine_for(settings)) for _ in range(2))
    try:
        assert one.run() is not None
        assert two.run() is None  # not the leader
        one.leader.release()  # the leader goes away: the other takes over
        assert two.run() is not None
        assert one.run() is None
    finally:
        one.leader.dispose()
        two.leader.dispose()
    assert Leader("sqlite:///x.db", 1).holds()  # SQLite: one daemon assumed


@PG_ONLY
def test_two_daemons_on_postgresql_escalate_once(make_settings: MakeSettings):
    settings = with_agents(make_settings({"sla": SLA, "scheduler": {"interval": "1s"}}))
    tid = make_ticket(settings, clock.now() - timedelta(hours=2))  # due long ago, real time
    clock.set_source(None)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # logs to files, not pipes: a pipe nobody reads until the end can fill and stall a daemon
    log_files = [settings.data_dir.parent / f"daemon{i}.log" for i in range(2)]
    outputs = [path.open("wb") for path in log_files]
    procs = [subprocess.Popen([sys.executable, "-m", "helpdesk", "--config",
                               str(settings.source), "run"], env=env, cwd=REPO,
                              stderr=out) for out in outputs]
    try:
        # two daemons start and elect a leader: slow on a loaded 2-core machine
        wait_until(lambda: step_keys(settings, tid) == BOTH_STEPS, timeout=90,
                   what="the escalation")
        with engine_for(settings).connect() as conn:
            wait_until(lambda: conn.execute(text(
                # this database's locks only: other tests share the server
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )).scalar() == 1,
                what="one leader")
        # read while both run: once the leader stops, the other may rightly take over
        # before its own SIGTERM is handled
        logs = [path.read_text() for path in log_files]
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p, out in zip(procs, outputs, strict=True):
            p.wait(timeout=30)
            out.close()
    assert len(mails(settings, "sla-warning")) == 1
    assert len(mails(settings, "sla-breach")) == 1
    assert sum("now runs the scheduled work" in log for log in logs) == 1, logs


def test_a_simulated_future_run_does_not_hide_later_changes_from_the_live_scheduler(
        make_settings: MakeSettings):
    settings = with_agents(make_settings({"sla": SLA, "survey": {"enabled": True,
                                                                  "delay": "1h"}}))
    real = datetime.now(UTC).replace(microsecond=0)
    urgent = make_ticket(settings, real, priority="high")  # its SLA breaches in an hour
    done = make_ticket(settings, real - timedelta(hours=1), priority="low", subject="Toner")
    run_pass(settings, real)

    # an operator asks what the scheduler will do the day after tomorrow
    out = run_due_cli(settings, real + timedelta(days=2))
    assert f"HD-{urgent} sla:first_response:0:breach" in out and "simulated" in out
    assert mails(settings) == [] and step_keys(settings, urgent) == []
    assert ticket_row(settings, urgent).priority == "high"
    run_pass(settings, datetime.now(UTC))  # the daemon's next pass, a minute later

    # alice closes the other ticket for real; an hour later the live pass surveys it
    set_status(settings, done, "closed", datetime.now(UTC))
    done_now = run_pass(settings, datetime.now(UTC) + timedelta(hours=1, minutes=1))
    assert any(line.startswith(f"HD-{done} survey:") for line in done_now), done_now
    assert [m.rcpt_tos for m in mails(settings, "survey")] == [["carol@customer.test"]]
