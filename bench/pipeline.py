"""End-to-end benchmark: SMTP 250 -> ticket stored -> acknowledgement handed to the relay.

    python bench/pipeline.py [--mails N] [--connections K] [--corpus intake|realistic|both]
                             [--database-url postgresql+psycopg://... [--daemons 1|2]]

For each corpus, in the same run:

1. the baseline: a bare aiosmtpd server that commits each mail to SQLite (WAL,
   synchronous=FULL) before its 250 (bench/intake.py's), sent the same burst;
2. the real daemon (its own process, SQLite with its durable settings, its outgoing
   relay an aiosmtpd sink in this process) sent the burst; timed from the first mail
   sent until every mail is stored and every mail the pipeline queued for the relay
   (the acknowledgements) has been accepted by the sink.

It prints both rates, their ratio (issue #18's target: >= 0.5), the CPU per mail of the
whole daemon (all its processes, from /proc) and, from the daemon's /metrics, the CPU
and wall time per mail by pipeline stage (parse, thread, rules, store, render, send).
The realistic corpus (bench/mailcorpus.py) first opens tickets untimed, so that a third
of the burst answers existing tickets.

With --database-url (PostgreSQL) each corpus gets a fresh database of its own on that
server (created, then dropped), and --daemons 2 starts two daemons with separate
data_dirs on it, the burst split between their SMTP ports (the baseline stays SQLite);
CPU and stages are summed over the daemons.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from intake import (
    RCPT,
    Progress,
    Run,
    Server,
    build_mails,
    free_port,
    load,
    start_baseline,
    wait_for_smtp,
)
from mailcorpus import Mail, burst, originals
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
STAGES = ("parse", "thread", "rules", "store", "render", "send")


class Sink:
    """The outgoing relay: an aiosmtpd server that counts what it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.count = 0
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        with self.lock:
            self.count += 1
        return "250 2.0.0 OK"

    def stop(self) -> None:
        self.controller.stop()


@dataclass
class Daemon:
    server: Server
    data_dir: Path
    http_port: int
    database_url: str = ""  # "": SQLite in data_dir


def start_daemon(work: Path, relay_port: int, database_url: str = "",
                 name: str = "daemon") -> Daemon:
    port, http_port = free_port(), free_port()
    data_dir = work / name
    config = work / f"{name}.toml"
    config.write_text(
        "[helpdesk]\n"
        'name = "Bench Helpdesk"\n'
        f'address = "{RCPT}"\n'
        'domains = ["example.test"]\n'
        f'data_dir = "{data_dir}"\n'
        + (f'database_url = "{database_url}"\n' if database_url else "")
        + 'secret = "bench-secret"\n'
        "[smtp]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        "[outgoing]\n"
        'relay_host = "127.0.0.1"\n'
        f"relay_port = {relay_port}\n"
        "[http]\n"
        f'listen = "127.0.0.1:{http_port}"\n'
    )
    import subprocess

    log = open(work / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen([sys.executable, "-m", "helpdesk", "--config", str(config), "run"],
                            stdout=log, stderr=log, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    wait_for_smtp(port, proc)
    return Daemon(Server("helpdesk daemon", port, proc), data_dir, http_port, database_url)


# -- PostgreSQL and several daemons (--database-url, --daemons) -------------------------


def fresh_database(url: str) -> str:
    """A new, empty database on the server of `url`; its URL."""
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = f"helpdesk_bench_{uuid.uuid4().hex[:10]}"
    admin = parsed.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return parsed.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


def load_split(daemons: list[Daemon], mails: list[tuple[str, bytes]], k: int) -> Run:
    """The burst split between the daemons' SMTP ports, sent at the same time."""
    if len(daemons) == 1:
        return load(daemons[0].server.port, mails, k)
    runs: list[Run] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        run = load(daemons[i].server.port, mails[i::len(daemons)], max(1, k // len(daemons)))
        with lock:
            runs.append(run)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(daemons))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = Run(started=min(r.started for r in runs), ended=max(r.ended for r in runs))
    for r in runs:
        total.latencies += r.latencies
        total.errors += r.errors
    return total


def summed(parts: list[dict[tuple[str, str], float]]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for part in parts:
        for key, value in part.items():
            out[key] = out.get(key, 0.0) + value
    return out


# -- what the daemon did ----------------------------------------------------------------


def process_cpu(pid: int, descendants: bool = True) -> float:
    """CPU seconds (user + system) of `pid` and (unless told not to) all its descendants,
    from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            if not descendants:
                continue
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def stage_totals(http_port: int) -> dict[tuple[str, str], float]:
    """(kind, stage) -> seconds, kind "cpu" or "wall", from the daemon's /metrics."""
    url = f"http://127.0.0.1:{http_port}/metrics"
    with urllib.request.urlopen(url, timeout=30) as resp:
        text = resp.read().decode()
    names = {"helpdesk_pipeline_stage_cpu_seconds_total": "cpu",
             "helpdesk_pipeline_stage_seconds_total": "wall"}
    return {(names[s.name], s.labels["stage"]): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name in names}


def wait_done(daemon: Daemon, sink: Sink, stored: int,
              timeout: float = 900.0) -> tuple[float, float, int]:
    """Until `stored` incoming messages are in the database and every outgoing row is sent
    and accepted by the sink; returns when the last was stored and when all were done
    (perf_counter), and how many mails the sink had taken when the last was stored."""
    deadline = time.monotonic() + timeout
    progress = Progress(daemon.data_dir, daemon.database_url)
    try:
        return _wait_done(progress, sink, stored, deadline)
    finally:
        progress.close()


def _wait_done(progress: Progress, sink: Sink, stored: int,
               deadline: float) -> tuple[float, float, int]:
    all_stored = 0.0
    relayed_by_then = 0
    while time.monotonic() < deadline:
        if progress.stored() >= stored:
            if not all_stored:
                all_stored = time.perf_counter()
                with sink.lock:
                    relayed_by_then = sink.count
            open_rows = progress.one("SELECT count(*) FROM outbox WHERE status IN "
                                     "('queued', 'sending')")
            sent = progress.one("SELECT count(*) FROM outbox WHERE status = 'sent'")
            with sink.lock:
                relayed = sink.count
            if open_rows == 0 and relayed >= sent:
                return all_stored, time.perf_counter(), relayed_by_then
        time.sleep(0.02)
    raise SystemExit(f"the daemon did not finish {stored} mails in time (see its log)")


# -- one corpus ----------------------------------------------------------------------


@dataclass
class Result:
    corpus: str
    mails: int
    baseline_rate: float
    intake_rate: float
    e2e_seconds: float
    stored_seconds: float  # from the first mail sent until the last was stored
    acks_by_then: int  # acknowledgements relayed when the last mail was stored
    daemon_cpu: float
    stages: dict[tuple[str, str], float]
    acks: int
    where: str = "SQLite, one daemon"
    # Where the machine's CPUs went (seconds), to show how much of them the target leaves:
    main_cpu: float = 0.0  # the daemons' main processes (the rest of daemon_cpu: listeners)
    bench_cpu: float = 0.0  # this process during the burst: SMTP client and relay sink
    baseline_server_cpu: float = 0.0
    baseline_client_cpu: float = 0.0
    baseline_seconds: float = 0.0

    @property
    def e2e_rate(self) -> float:
        return self.mails / self.e2e_seconds

    @property
    def ratio(self) -> float:
        return self.e2e_rate / self.baseline_rate if self.baseline_rate else 0.0


def as_pairs(mails: list[Mail]) -> list[tuple[str, bytes]]:
    return [(m.sender, m.raw) for m in mails]


def run_corpus(work: Path, corpus: str, n: int, k: int, database_url: str = "",
               daemons: int = 1) -> Result:
    if corpus == "intake":
        seed: list[tuple[str, bytes]] = []
        base_mails, mails = build_mails(n, "base"), build_mails(n, "burst")
    else:
        existing = originals(max(1, n // 3), "seed")
        seed = as_pairs(existing)
        base_mails = as_pairs(burst(n, "base", existing))
        mails = as_pairs(burst(n, "burst", existing))
    (work / corpus).mkdir()
    baseline = start_baseline(work / corpus)
    try:
        server0, client0 = process_cpu(baseline.proc.pid), time.process_time()
        base = load(baseline.port, base_mails, k)
        base_server_cpu = process_cpu(baseline.proc.pid) - server0
        base_client_cpu = time.process_time() - client0
    finally:
        baseline.stop()
    sink = Sink()
    url = fresh_database(database_url) if database_url else ""
    started: list[Daemon] = []
    try:
        for i in range(daemons):  # one after the other: the first migrates the database
            started.append(start_daemon(work / corpus, sink.port, url, f"daemon{i or ''}"))
        daemon = started[0]

        def cpu() -> float:
            return sum(process_cpu(d.server.proc.pid) for d in started)

        def main_cpu() -> float:
            return sum(process_cpu(d.server.proc.pid, descendants=False) for d in started)

        def stages() -> dict[tuple[str, str], float]:
            return summed([stage_totals(d.http_port) for d in started])
        if seed:  # the tickets the replies answer: opened before, not timed
            load_split(started, seed, k)
            wait_done(daemon, sink, len(seed))
        cpu0, stages0, acks0 = cpu(), stages(), sink.count
        main0, bench0 = main_cpu(), time.process_time()
        run = load_split(started, mails, k)
        all_stored, done, relayed_by_then = wait_done(daemon, sink, len(seed) + n)
        main1, bench1 = main_cpu(), time.process_time()
        cpu1, stages1 = cpu(), stages()
    finally:
        for d in started:
            d.server.stop()
        sink.stop()
        if url:
            drop_database(url)
    if run.errors or base.errors:
        raise SystemExit(f"SMTP errors: daemon {run.errors[:3]}, baseline {base.errors[:3]}")
    where = (f"PostgreSQL, {daemons} daemon{'s' if daemons > 1 else ''}" if database_url
             else "SQLite, one daemon")
    return Result(corpus, n, base.rate, run.rate, done - run.started,
                  all_stored - run.started, relayed_by_then - acks0, cpu1 - cpu0,
                  {key: v - stages0.get(key, 0.0) for key, v in stages1.items()},
                  sink.count - acks0, where, main1 - main0, bench1 - bench0,
                  base_server_cpu, base_client_cpu, base.ended - base.started)


def report(r: Result) -> None:
    print(f"\n{r.corpus} corpus, burst of {r.mails} mails ({r.acks} acknowledgements relayed; "
          f"{r.where}):")
    print(f"  baseline (aiosmtpd + SQLite commit)  {r.baseline_rate:8.1f} mails/s")
    print(f"  daemon intake (250s)                 {r.intake_rate:8.1f} mails/s")
    print(f"  daemon end to end (stored + acked)   {r.e2e_rate:8.1f} mails/s   "
          f"= {r.ratio:.2f} x baseline (target >= 0.50) {'OK' if r.ratio >= 0.5 else 'MISSED'}")
    print(f"  all stored after {r.stored_seconds:.1f} s ({r.acks_by_then} acknowledgements "
          f"relayed by then), all relayed after {r.e2e_seconds:.1f} s (intake took "
          f"{r.mails / r.intake_rate:.1f} s)")
    print(f"  daemon CPU, all processes            {r.daemon_cpu / r.mails * 1000:8.2f} ms/mail")
    print("  pipeline by stage, ms per mail:        CPU     wall")
    for stage in STAGES:
        cpu = r.stages.get(("cpu", stage), 0.0) / r.mails * 1000
        wall = r.stages.get(("wall", stage), 0.0) / r.mails * 1000
        print(f"    {stage:<8}                          {cpu:7.2f}  {wall:7.2f}")
    cpu = sum(v for (kind, _), v in r.stages.items() if kind == "cpu") / r.mails * 1000
    wall = sum(v for (kind, _), v in r.stages.items() if kind == "wall") / r.mails * 1000
    print(f"    {'total':<8}                          {cpu:7.2f}  {wall:7.2f}")
    report_machine(r)


def report_machine(r: Result) -> None:
    """How busy the machine's CPUs were, and what the target leaves for the daemon: the
    client, the listener and the relay sink share the CPUs with the daemon's main process,
    so at the target rate their CPU per mail and the daemon's must fit in the CPUs there
    are. Polling the database for progress is in this process's figure too (a few ms a
    second)."""
    ms = 1000 / r.mails
    cpus = os.cpu_count() or 1
    base_busy = (r.baseline_server_cpu + r.baseline_client_cpu) / r.baseline_seconds
    busy = (r.daemon_cpu + r.bench_cpu) / r.e2e_seconds
    listener = r.daemon_cpu - r.main_cpu
    print(f"  CPUs busy, of {cpus}: baseline {base_busy:.2f} (server "
          f"{r.baseline_server_cpu * ms:.2f}, client {r.baseline_client_cpu * ms:.2f} ms/mail); "
          f"end to end {busy:.2f} (daemon main {r.main_cpu * ms:.2f}, listener "
          f"{listener * ms:.2f}, client and relay sink {r.bench_cpu * ms:.2f} ms/mail)")
    target = 0.5 * r.baseline_rate
    budget = cpus / target * 1000
    left = budget - (listener + r.bench_cpu) * ms
    print(f"  at the target ({target:.0f} mails/s) {cpus} CPUs give {budget:.2f} ms per mail "
          f"to everything; after the listener, client and sink above, {left:.2f} ms for "
          f"the daemon's main process (and at most {1000 / target:.2f} ms on one CPU)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=500)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--corpus", choices=("intake", "realistic", "both"), default="both")
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL server (URL of any database on it): each corpus "
                             "runs on a fresh database there; default SQLite")
    parser.add_argument("--daemons", type=int, choices=(1, 2), default=1,
                        help="daemons on the one PostgreSQL database (needs --database-url)")
    args = parser.parse_args()
    if args.daemons > 1 and not args.database_url:
        parser.error("--daemons 2 needs --database-url (SQLite is one daemon's)")
    load_avg = os.getloadavg()
    print(f"pipeline benchmark: bursts of {args.mails} mails over {args.connections} "
          f"connections; {os.cpu_count()} CPUs, load average {load_avg[0]:.1f} at start; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; sqlite {sqlite3.sqlite_version}")
    corpora = ("intake", "realistic") if args.corpus == "both" else (args.corpus,)
    with tempfile.TemporaryDirectory(prefix="helpdesk-bench-") as tmp:
        for corpus in corpora:
            report(run_corpus(Path(tmp), corpus, args.mails, args.connections,
                              args.database_url, args.daemons))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
