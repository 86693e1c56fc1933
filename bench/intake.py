"""Intake benchmark: the real daemon against a bare aiosmtpd + SQLite baseline, same run.

    python bench/intake.py [--mails N] [--connections K] [--paced-mails M] [--rate R]

Both servers run as their own processes on loopback. For each one:

1. burst: N mails over K parallel SMTP connections as fast as they go; mails/second and
   p50/p99 of the time smtplib's data() takes (DATA, body, the final 250);
2. paced: M mails at R mails/s over the same K connections; p50/p99 of the same.

For the daemon it also reports how long the pipeline took to turn the burst into tickets
(and acknowledgements into the maildir): mails/second end to end.

The baseline is the least a durable SMTP server can do: aiosmtpd whose handler stores
each mail in one SQLite commit (WAL, synchronous=FULL) in a thread, then answers 250.
Targets: daemon throughput >= 0.5 x baseline, p99 < 50 ms at 100 mails/s.
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import os
import queue
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RCPT = "support@example.test"


# -- the baseline server (runs in its own process: `intake.py --serve-baseline PORT DB`) ----


def serve_baseline(port: int, db_path: str) -> None:
    from aiosmtpd.controller import Controller

    conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS mail (id INTEGER PRIMARY KEY, sender TEXT, "
                 "rcpts TEXT, raw BLOB)")
    lock = threading.Lock()

    def store(sender: str, rcpts: str, raw: bytes) -> None:
        with lock:
            conn.execute("BEGIN")
            conn.execute("INSERT INTO mail (sender, rcpts, raw) VALUES (?, ?, ?)",
                         (sender, rcpts, raw))
            conn.execute("COMMIT")

    class Handler:
        async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
            await asyncio.to_thread(store, envelope.mail_from, ",".join(envelope.rcpt_tos),
                                    envelope.original_content or b"")
            return "250 2.0.0 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port, decode_data=False,
                            enable_SMTPUTF8=True)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()
    conn.close()


# -- servers under test -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_smtp(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=2) as client:
                if client.noop()[0] == 250:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"no SMTP answer on port {port} after {timeout}s")


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_daemon(work: Path, database_url: str) -> tuple[Server, Path]:
    port = free_port()
    data_dir = work / "daemon"
    config = work / "helpdesk.toml"
    db_line = f'database_url = "{database_url}"\n' if database_url else ""
    config.write_text(
        "[helpdesk]\n"
        'name = "Bench Helpdesk"\n'
        f'address = "{RCPT}"\n'
        'domains = ["example.test"]\n'
        f'data_dir = "{data_dir}"\n'
        'secret = "bench-secret"\n'
        f"{db_line}"
        "[smtp]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
    )
    log = open(work / "daemon.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen([sys.executable, "-m", "helpdesk", "--config", str(config), "run"],
                            stdout=log, stderr=log, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    wait_for_smtp(port, proc)
    return Server("helpdesk daemon", port, proc), data_dir


def start_baseline(work: Path) -> Server:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-baseline", str(port), str(work / "baseline.db")],
        stdout=subprocess.DEVNULL, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    wait_for_smtp(port, proc)
    return Server("baseline (aiosmtpd + SQLite commit)", port, proc)


# -- the load ----------------------------------------------------------------------


def build_mails(count: int, tag: str) -> list[tuple[str, bytes]]:
    mails = []
    for i in range(count):
        sender = f"customer{i}-{tag}@customer.test"  # one each: no ack is rate limited
        msg = EmailMessage()
        msg["From"] = f"Customer {i} <{sender}>"
        msg["To"] = RCPT
        msg["Subject"] = f"Bench {tag} mail {i}: the printer is on fire again"
        msg["Message-ID"] = f"<bench-{tag}-{i}@customer.test>"
        msg.set_content(f"Hello,\n\nmail {i} of the {tag} run.\n" + "Some text. " * 60)
        mails.append((sender, msg.as_bytes(policy=email.policy.SMTP)))
    return mails


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # when each sender's mail got its 250 (time.time(): bench/latency.py follows it on)
    answered: dict[str, float] = field(default_factory=dict)
    started: float = 0.0
    ended: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def _sender(port: int, work: queue.Queue[tuple[float, str, bytes]], run: Run) -> None:
    client = smtplib.SMTP("127.0.0.1", port, timeout=60)
    try:
        client.ehlo()
        while True:
            try:
                due, sender, raw = work.get_nowait()
            except queue.Empty:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            client.mail(sender)
            client.rcpt(RCPT)
            t0 = time.perf_counter()
            code, reply = client.data(raw)
            wall, elapsed = time.time(), time.perf_counter() - t0
            with run.lock:
                if code == 250:
                    run.answered[sender] = wall
                    run.latencies.append(elapsed)
                else:
                    run.errors.append(f"{code} {reply!r}")
    finally:
        client.quit()


def load(port: int, mails: list[tuple[str, bytes]], connections: int,
         rate: float | None = None) -> Run:
    """Send `mails` over `connections` connections; paced at `rate` mails/s when given."""
    run = Run()
    work: queue.Queue[tuple[float, str, bytes]] = queue.Queue()
    run.started = time.perf_counter() + 0.2  # give the threads time to connect
    for i, (sender, raw) in enumerate(mails):
        work.put((run.started + (i / rate if rate else 0.0), sender, raw))
    threads = [threading.Thread(target=_sender, args=(port, work, run))
               for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.ended = time.perf_counter()
    return run


# -- the daemon's own progress -----------------------------------------------------


class Progress:
    """The daemon's progress, read on one connection kept open: a fresh connection per
    poll re-reads the message table (its rows hold the mails' text) and cost about 4 ms
    of CPU a poll, a fifth of a CPU at 50 polls a second taken from the daemon being
    measured. On SQLite (one writer, ids handed out in commit order) incoming messages are
    counted from the last id seen on."""

    def __init__(self, data_dir: Path, database_url: str = "") -> None:
        self.sqlite = not database_url
        if self.sqlite:
            self.conn: Any = sqlite3.connect(
                f"file:{data_dir / 'helpdesk.db'}?mode=ro", uri=True, timeout=30,
                isolation_level=None)
        else:
            import psycopg
            from sqlalchemy.engine import make_url

            dsn = make_url(database_url).set(drivername="postgresql")
            self.conn = psycopg.connect(dsn.render_as_string(hide_password=False),
                                        autocommit=True)
        self.last_id = 0
        self.incoming = 0

    def stored(self) -> int:
        """Incoming messages stored so far."""
        if not self.sqlite:
            return self.one("SELECT count(*) FROM message WHERE direction = 'in'")
        row = self.conn.execute("SELECT max(id), count(*) FILTER (WHERE direction = 'in') "
                                "FROM message WHERE id > ?", (self.last_id,)).fetchone()
        if row[0] is not None:
            self.last_id, self.incoming = row[0], self.incoming + row[1]
        return self.incoming

    def one(self, sql: str) -> int:
        row = self.conn.execute(sql).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.conn.close()


def count_rows(db_path: Path, sql: str) -> int:
    """One count on a connection of its own (bench/memory.py, every half second)."""
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    except sqlite3.OperationalError:
        return 0
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def wait_processed(data_dir: Path, total: int, timeout: float = 600.0) -> float:
    """Wait until `total` incoming messages are stored and their acks sent; returns when."""
    deadline = time.monotonic() + timeout
    progress = Progress(data_dir)
    try:
        while time.monotonic() < deadline:
            if progress.stored() >= total and \
                    progress.one("SELECT count(*) FROM outbox WHERE status = 'sent'") >= total:
                return time.perf_counter()
            time.sleep(0.05)
    finally:
        progress.close()
    raise SystemExit(f"the pipeline did not finish {total} mails in {timeout}s")


# -- report ------------------------------------------------------------------------


def line(label: str, run: Run) -> str:
    errors = f", {len(run.errors)} errors" if run.errors else ""
    return (f"  {label:<38} {run.rate:8.1f} mails/s   p50 {run.pct(50):6.1f} ms   "
            f"p99 {run.pct(99):6.1f} ms   ({len(run.latencies)} mails in {run.seconds:.2f} s"
            f"{errors})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--paced-mails", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--database-url", default="", help="Default: SQLite in the data dir.")
    parser.add_argument("--serve-baseline", nargs=2, metavar=("PORT", "DB"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(int(args.serve_baseline[0]), args.serve_baseline[1])
        return

    n, k = args.mails, args.connections
    print(f"intake benchmark: {n} mails over {k} connections; paced {args.paced_mails} mails "
          f"at {args.rate:g}/s; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="helpdesk-bench-") as tmp:
        work = Path(tmp)

        baseline = start_baseline(work)
        try:
            base_burst = load(baseline.port, build_mails(n, "base"), k)
            base_paced = load(baseline.port, build_mails(args.paced_mails, "base-paced"), k,
                              rate=args.rate)
        finally:
            baseline.stop()

        daemon, data_dir = start_daemon(work, args.database_url)
        try:
            burst = load(daemon.port, build_mails(n, "burst"), k)
            e2e = None
            if not args.database_url:
                done = wait_processed(data_dir, n)
                e2e = (burst.started, done)
            paced = load(daemon.port, build_mails(args.paced_mails, "paced"), k, rate=args.rate)
            if not args.database_url:
                wait_processed(data_dir, n + args.paced_mails)
        finally:
            daemon.stop()

    print("\nburst (as fast as it goes):")
    print(line(baseline.name, base_burst))
    print(line(daemon.name, burst))
    print(f"\npaced at {args.rate:g} mails/s:")
    print(line(baseline.name, base_paced))
    print(line(daemon.name, paced))
    ratio = burst.rate / base_burst.rate if base_burst.rate else 0.0
    print(f"\nthroughput ratio daemon/baseline: {ratio:.2f} (target >= 0.50) "
          f"{'OK' if ratio >= 0.5 else 'MISSED'}")
    p99 = paced.pct(99)
    print(f"p99 at {args.rate:g} mails/s: {p99:.1f} ms (target < 50 ms) "
          f"{'OK' if p99 < 50 else 'MISSED'}")
    if e2e:
        seconds = e2e[1] - e2e[0]
        print(f"end to end (first mail sent -> last ticket stored and ack written): "
              f"{n} mails in {seconds:.2f} s = {n / seconds:.1f} mails/s "
              f"(pipeline still busy {e2e[1] - (burst.ended):.2f} s after the last 250)")


if __name__ == "__main__":
    main()
