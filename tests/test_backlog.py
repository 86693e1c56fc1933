"""Backlog visibility and where the pipeline's time goes, on the real daemon: /metrics and
`helpdesk status` show the spool's depth, its drain rate and when it will be empty, and
the pipeline's CPU and wall time by stage. No timing is asserted: only that the figures
are there, counted for the mails that went through, and say "not draining" when mail
waits and nothing drains."""

from __future__ import annotations

import json
import math
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpdesk.throughput import DrainRate, StageTimes, empty_in
from tests.conftest import MakeSettings
from tests.helpers import (
    DaemonThread,
    RelaySink,
    free_port,
    make_mail,
    run_cli,
    send,
    status_rows,
    wait_until,
)

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        body = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def _stage(m: Samples, metric: str, stage: str) -> float:
    return m[(f"helpdesk_pipeline_stage_{metric}_total", (("stage", stage),))]


def _snapshot(settings: Any) -> dict[str, Any]:
    path = settings.data_dir / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


@SQLITE
def test_metrics_and_status_show_the_stages_and_the_drain(
        make_settings: MakeSettings, relay: RelaySink,
        start_daemon: Callable[..., DaemonThread]) -> None:
    settings = make_settings({"outgoing": {"relay_host": "127.0.0.1", "relay_port": relay.port}})
    daemon = start_daemon(settings)
    port = daemon.daemon.http.port  # type: ignore[union-attr]
    for n in range(3):
        send(daemon.port, make_mail(subject=f"printer {n}", sender=f"c{n}@customer.test"))
    relay.wait_for(3)  # three acknowledgements: stored, rendered, sent
    m = _samples(port)
    # each mail parsed, routed and stored once; every stage's figures are there
    for stage in ("parse", "rules", "store"):
        assert _stage(m, "runs", stage) == 3, stage
    assert _stage(m, "runs", "thread") >= 3 and _stage(m, "runs", "render") >= 3
    assert _stage(m, "runs", "send") >= 1
    assert sum(_stage(m, "cpu_seconds", s) for s in ("parse", "thread", "store")) > 0
    assert _stage(m, "seconds", "store") > 0
    assert m[("helpdesk_spool_drain_rate", ())] > 0  # three mails in the last minute
    assert m[("helpdesk_spool_waiting", ())] == 0
    assert m[("helpdesk_spool_empty_in_seconds", ())] == 0

    wait_until(lambda: _snapshot(settings).get("spool", {}).get("drain_per_s"), timeout=20,
               what="the daemon's snapshot with its drain rate")
    result = run_cli(settings, "status")
    out = result.stdout.decode()
    state, detail = status_rows(out)["spool"]
    assert state == "ok" and detail.startswith("0 waiting, 0 set aside, draining "), out
    assert detail.endswith("/s over the last minute"), out  # nothing waits: no estimate
    spool = json.loads(run_cli(settings, "status", "--json").stdout)["spool"]
    assert spool["drain_per_s"] > 0 and spool["empty_in_s"] == 0


@SQLITE
def test_mail_waiting_with_nothing_draining_says_so(
        make_settings: MakeSettings, start_daemon: Callable[..., DaemonThread]) -> None:
    # nothing listens there: mail is taken (250) and waits in the spool
    away = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/helpdesk"
    settings = make_settings({"helpdesk": {"database_url": away}})
    daemon = start_daemon(settings)
    port = daemon.daemon.http.port  # type: ignore[union-attr]
    send(daemon.port, make_mail())
    send(daemon.port, make_mail())
    m = _samples(port)
    assert m[("helpdesk_spool_waiting", ())] == 2
    assert m[("helpdesk_spool_drain_rate", ())] == 0
    assert math.isinf(m[("helpdesk_spool_empty_in_seconds", ())])

    wait_until(lambda: _snapshot(settings).get("spool", {}).get("waiting") == 2, timeout=20,
               what="the snapshot counting the two mails")
    result = run_cli(settings, "status")
    out = result.stdout.decode()
    detail = status_rows(out)["spool"][1]
    assert detail.startswith("2 waiting, 0 set aside, draining 0.0/s"), out
    assert detail.endswith("not draining"), out
    spool = json.loads(run_cli(settings, "status", "--json").stdout)["spool"]
    assert spool["waiting"] == 2 and spool["empty_in_s"] is None


def test_the_estimate_and_nested_stages() -> None:
    assert empty_in(0, 0.0) == 0.0
    assert empty_in(300, 25.0) == 12.0
    assert empty_in(5, 0.0) is None  # waiting, not draining: never, as things are
    times = StageTimes()
    with times.stage("store"):
        with times.stage("render"):
            pass
        with times.stage("render"):
            pass
    totals = times.totals()
    # an inner stage pauses the outer one: each run counted once, under its own name
    assert (totals["store"].count, totals["render"].count, totals["parse"].count) == (1, 2, 0)


def test_the_drain_rate_keeps_only_its_window_even_unread() -> None:
    # `helpdesk ingest` of a big maildir never reads the rate: it must not keep a time
    # for every mail it stored (issue #18: memory bounded however long the drain)
    rate = DrainRate(window=0.05)
    for _ in range(1000):
        rate.finished()
    time.sleep(0.06)
    rate.finished()
    assert len(rate._done) == 1
    assert rate.per_second() > 0
