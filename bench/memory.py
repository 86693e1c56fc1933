"""Memory benchmark: the whole daemon's peak RSS draining a spool, and one 25 MiB mail.

    python bench/memory.py [--mails N] [--corpus realistic|intake] [--big-mib M]
                           [--existing-database]

The daemon is `helpdesk run` in its own process (SQLite with its durable settings, its
outgoing relay an aiosmtpd sink in this process, as in bench/pipeline.py); it starts an
SMTP listener process of its own. A sampler thread reads /proc every --interval seconds
(50 ms) for every process in the daemon's tree and sums their VmRSS; at the end it also
reports each process's VmHWM (the kernel's own peak, which no sampling can miss).

1. One big mail (issue #18: "a 25 MiB mail does not multiply in memory"): a mail of
   --big-mib MiB (a PDF attachment, base64, just under the default max_message_size)
   sent over SMTP to an idle daemon, timed until stored and its acknowledgement accepted
   by the relay. Reported: the peak RSS increase over the idle daemon, per process and
   in total, as a multiple of the mail's size. Baseline in the same run: the bare
   aiosmtpd + SQLite server of bench/intake.py taking the same mail (its increase until
   the 250, i.e. until it has committed the mail).
2. Draining a spool (target: peak RSS of all processes under 150 MiB): N mails written
   into the daemon's spool (helpdesk.spool.Spool.put, in data_dir/spool, where the daemon
   looks) before it starts, then timed until every one is stored and every
   acknowledgement relayed. A third of the realistic corpus replies to tickets opened by
   the mails before it in the spool. Reported: peak total RSS, each process's peak, the
   RSS as the drain goes (a leak grows with the mails drained, a working set does not),
   beside the idle daemon of part 1. With --existing-database the schema is made
   before the daemon starts, as when a daemon is restarted: it then has no migration to
   run and never imports alembic.
"""

from __future__ import annotations

import argparse
import contextlib
import email.policy
import os
import random
import smtplib
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from intake import RCPT, count_rows, start_baseline
from mailcorpus import Mail, originals, replies
from pipeline import Sink, start_daemon, wait_done

from helpdesk.spool import Envelope, Spool

MIB = 1024 * 1024
TARGET_MIB = 150.0


# -- sampling /proc -------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants (threads' children included), less any child
    forked but not yet exec'd: until exec its RSS is its parent's pages, shared, and
    counting them would add the parent twice for that instant."""
    found, todo = [], [(root, b"")]
    while todo:
        pid, parent_cmdline = todo.pop()
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if cmdline == parent_cmdline:
                continue
            found.append(pid)
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [(int(c), cmdline) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def read_status(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in bytes; None when the process is gone."""
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return rss, hwm


def process_name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return f"pid {pid}"
    text = " ".join(a.decode(errors="replace") for a in argv if a)
    if "smtp_process" in text:
        return f"SMTP listener ({pid})"
    if "helpdesk" in text and text.endswith(" run"):
        return f"daemon main ({pid})"
    if "--serve-baseline" in text:
        return f"baseline server ({pid})"
    return f"{text[-40:]} ({pid})"


def shared_counted_once(pids: list[int]) -> tuple[int, int]:
    """(sum of Pss, sum of anonymous memory) in bytes, from smaps_rollup: Pss splits each
    shared page (libpython, the libraries) between the processes mapping it, so the
    daemon's two processes do not count them twice (nor do other Python programs on
    the machine using the same files, which lowers it a little more); anonymous memory
    is what no file backs: the heap, the mails, the caches."""
    pss = anon = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                pss += int(line.split()[1]) * 1024
            elif line.startswith("Anonymous:"):
                anon += int(line.split()[1]) * 1024
    return pss, anon


@dataclass
class Window:
    """What the sampler saw between two marks."""

    start_total: int = 0
    start_per_pid: dict[int, int] = field(default_factory=dict)
    peak_total: int = 0
    peak_per_pid: dict[int, int] = field(default_factory=dict)
    samples: int = 0


class Sampler(threading.Thread):
    """Sums the RSS of every process this benchmark started (its descendants, not
    itself): so the daemon is sampled from its first instant, before it listens."""

    def __init__(self, interval: float, root: int | None = None) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.root = root or os.getpid()
        self.interval = interval
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.window = Window()
        self.last_total = 0
        self.last_per_pid: dict[int, int] = {}
        self.hwm: dict[int, int] = {}
        self.names: dict[int, str] = {}

    def sample(self) -> None:
        per_pid: dict[int, int] = {}
        for pid in process_tree(self.root)[1:]:
            status = read_status(pid)
            if status is None:
                continue
            per_pid[pid], self.hwm[pid] = status
            if pid not in self.names:
                self.names[pid] = process_name(pid)
        total = sum(per_pid.values())
        with self.lock:
            self.last_total, self.last_per_pid = total, per_pid
            w = self.window
            w.samples += 1
            w.peak_total = max(w.peak_total, total)
            for pid, rss in per_pid.items():
                w.peak_per_pid[pid] = max(w.peak_per_pid.get(pid, 0), rss)

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.sample()

    def mark(self) -> Window:
        """Close the current window (returned) and open a new one from the latest sample."""
        self.sample()
        with self.lock:
            done = self.window
            self.window = Window(self.last_total, dict(self.last_per_pid), self.last_total,
                                 dict(self.last_per_pid))
        return done

    def settle(self, seconds: float) -> int:
        """Wait for RSS to stop moving (start-up work done); returns the total."""
        time.sleep(seconds)
        self.sample()
        return self.last_total

    def reset_peaks(self) -> None:
        """Start each process's VmHWM afresh (Linux: "5" to clear_refs), so that after a
        window it is that window's own peak, one no 50 ms sampling can miss."""
        for pid in process_tree(self.root)[1:]:
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")
        self.hwm.clear()

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def mib(n: float) -> str:
    return f"{n / MIB:7.1f} MiB"


# -- the big mail ------------------------------------------------------------------------


def big_mail(size: int, tag: str) -> tuple[str, bytes]:
    """A mail of about `size` bytes (at most `size`): short text and one PDF attachment."""
    sender = f"big-{tag}@customer.test"
    # base64 with 76-character lines and CRLF: 78 bytes per 57 of payload
    payload = (size - 4096) * 57 // 78
    msg = EmailMessage()
    msg["From"] = f"Big Sender <{sender}>"
    msg["To"] = RCPT
    msg["Subject"] = f"The scans you asked for ({tag})"
    msg["Message-ID"] = f"<big-{tag}@customer.test>"
    msg.set_content("Hello,\n\nthe whole archive is attached.\n\nRegards\n")
    msg.add_attachment(b"%PDF-1.4\n" + random.Random(tag).randbytes(payload),
                       maintype="application", subtype="pdf", filename="archive.pdf")
    raw = msg.as_bytes(policy=email.policy.SMTP)
    assert len(raw) <= size, (len(raw), size)
    return sender, raw


def send_one(port: int, sender: str, raw: bytes) -> float:
    """Send one mail; returns the seconds from DATA to the 250."""
    with smtplib.SMTP("127.0.0.1", port, timeout=300) as client:
        client.ehlo()
        client.mail(sender)
        client.rcpt(RCPT)
        t0 = time.perf_counter()
        code, reply = client.data(raw)
        if code != 250:
            raise SystemExit(f"the big mail was refused: {code} {reply!r}")
        return time.perf_counter() - t0


@dataclass
class BigResult:
    name: str
    size: int
    idle: int
    window: Window
    names: dict[int, str]
    hwm: dict[int, int]
    seconds: float

    @property
    def increase(self) -> int:
        return self.window.peak_total - self.window.start_total

    @property
    def hwm_increase(self) -> int:
        """The processes' own peaks (VmHWM, reset before the mail) less their idle RSS,
        summed: an upper bound, as the peaks need not coincide."""
        return sum(self.hwm[pid] - self.window.start_per_pid.get(pid, 0)
                   for pid in self.window.peak_per_pid if pid in self.hwm)


def big_on(name: str, port: int, mail: tuple[str, bytes], interval: float,
           wait: Callable[[], object] | None = None) -> tuple[BigResult, Sampler]:
    sampler = Sampler(interval)
    sampler.start()
    idle = sampler.settle(2.0)
    sampler.reset_peaks()
    sampler.mark()
    t0 = time.perf_counter()
    send_one(port, *mail)
    if wait is not None:
        wait()
    seconds = time.perf_counter() - t0
    time.sleep(3 * interval)
    window = sampler.mark()
    return BigResult(name, len(mail[1]), idle, window, dict(sampler.names),
                     dict(sampler.hwm), seconds), sampler


def run_big(work: Path, size: int, interval: float) -> tuple[BigResult, BigResult]:
    mail = big_mail(size, "one")
    (work / "base").mkdir()
    baseline = start_baseline(work / "base")
    try:
        base, sampler = big_on(baseline.name, baseline.port, mail, interval)
        sampler.stop()
    finally:
        baseline.stop()
    (work / "big").mkdir()
    sink = Sink()
    daemon = start_daemon(work / "big", sink.port)
    try:
        res, sampler = big_on("helpdesk daemon", daemon.server.port, mail, interval,
                              wait=lambda: wait_done(daemon, sink, 1))
        sampler.stop()
    finally:
        daemon.server.stop()
        sink.stop()
    return base, res


def report_big(base: BigResult, res: BigResult) -> None:
    size = res.size
    print(f"\none mail of {size / MIB:.2f} MiB over SMTP (idle process -> peak while taking it):")
    for r in (base, res):
        what = "until its 250 (committed)" if r is base else "until stored and ack relayed"
        print(f"  {r.name:<36} idle {mib(r.idle)}; peak increase sampled {mib(r.increase)} "
              f"= {r.increase / size:3.1f} x the mail, by VmHWM {mib(r.hwm_increase)} = "
              f"{r.hwm_increase / size:3.1f} x  ({what}, {r.seconds:.2f} s)")
        for pid, peak in sorted(r.window.peak_per_pid.items()):
            start = r.window.start_per_pid.get(pid, 0)
            hwm = r.hwm.get(pid, peak)
            print(f"      {r.names.get(pid, pid)!s:<30} idle {mib(start)}, peak sampled "
                  f"{mib(peak)}, VmHWM {mib(hwm)} (+{(hwm - start) / size:.1f} x the mail)")
    print(f"  increase as a multiple of the mail, sampled / by VmHWM: daemon "
          f"{res.increase / size:.1f} / {res.hwm_increase / size:.1f}, baseline "
          f"{base.increase / size:.1f} / {base.hwm_increase / size:.1f}")


# -- the drain -------------------------------------------------------------------------


def corpus_chunks(n: int, corpus: str, chunk: int = 500) -> Iterator[list[Mail]]:
    """Mails in spool order, `chunk` at a time (a 20,000-mail corpus is not held whole)."""
    from intake import build_mails

    previous: list[Mail] = []
    for start in range(0, n, chunk):
        count = min(chunk, n - start)
        tag = f"c{start}"
        if corpus == "intake":
            yield [Mail(s, "", raw) for s, raw in build_mails(count, tag)]
            continue
        n_replies = count // 3 if previous else 0
        fresh = originals(count - n_replies, tag)
        yield fresh + replies(previous, n_replies, tag)
        previous = fresh


def fill_spool(spool_dir: Path, n: int, corpus: str) -> tuple[int, float]:
    """Put `n` mails in the spool as the listener would; returns (bytes, seconds)."""
    spool = Spool(spool_dir)
    total, t0 = 0, time.perf_counter()
    # several writers share the directory fsyncs (Spool's group commit)
    with ThreadPoolExecutor(8) as pool:
        for mails in corpus_chunks(n, corpus):
            envs = [Envelope(route="smtp", mail_from=m.sender, rcpt_tos=(RCPT,),
                             extra={"peer": "127.0.0.1", "helo": "bench"}) for m in mails]
            list(pool.map(spool.put, [m.raw for m in mails], envs))
            total += sum(len(m.raw) for m in mails)
    return total, time.perf_counter() - t0


@dataclass
class DrainResult:
    mails: int
    spool_bytes: int
    seconds: float
    window: Window
    names: dict[int, str]
    hwm: dict[int, int]
    timeline: list[tuple[float, int, int, int, int]]  # (s, stored, RSS, Pss, anon)
    load: tuple[float, float]
    start: Window  # from the daemon's start until its first mail is stored


def run_drain(work: Path, n: int, corpus: str, interval: float,
              existing: bool = False) -> DrainResult:
    (work / "drain").mkdir()
    spool_bytes, fill_s = fill_spool(work / "drain" / "daemon" / "spool", n, corpus)
    if existing:  # a restart: the schema is there, the daemon has no migration to run
        from helpdesk.store import db as store_db

        store_db.upgrade(f"sqlite:///{work / 'drain' / 'daemon' / 'helpdesk.db'}")
    print(f"\nspool filled: {n} mails, {spool_bytes / MIB:.0f} MiB, in {fill_s:.0f} s; "
          f"draining ...", flush=True)
    sink = Sink()
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    sampler = Sampler(interval)
    sampler.start()
    daemon = start_daemon(work / "drain", sink.port)
    timeline: list[tuple[float, int, int, int, int]] = []
    db = daemon.data_dir / "helpdesk.db"
    start = Window()
    try:
        next_mark = 0
        while True:
            stored = count_rows(db, "SELECT count(*) FROM message WHERE direction = 'in'")
            if stored and not start.samples:
                start = sampler.mark()
            if stored >= next_mark or stored >= n:
                pids = list(sampler.last_per_pid)
                timeline.append((time.perf_counter() - t0, stored, sampler.last_total,
                                 *shared_counted_once(pids)))
                next_mark = stored + max(1, n // 10)
            if stored >= n:
                break
            if daemon.server.proc.poll() is not None:
                raise SystemExit("the daemon died; see its log")
            time.sleep(0.5)
        wait_done(daemon, sink, n, timeout=3600)
        seconds = time.perf_counter() - t0
        window = sampler.mark()
        names, hwm = dict(sampler.names), dict(sampler.hwm)
    finally:
        sampler.stop()
        daemon.server.stop()
        sink.stop()
    return DrainResult(n, spool_bytes, seconds, window, names, hwm, timeline,
                       (load0, os.getloadavg()[0]), start)


def report_drain(r: DrainResult, idle: int) -> None:
    print(f"\ndraining a spool of {r.mails} mails ({r.spool_bytes / MIB:.0f} MiB): "
          f"{r.seconds:.0f} s from start to the last ack relayed = "
          f"{r.mails / r.seconds:.1f} mails/s; {r.window.samples} samples; "
          f"load average {r.load[0]:.1f} at start, {r.load[1]:.1f} at the end")
    print(f"  idle daemon (part 1, all processes)  {mib(idle)}")
    print("  as the drain went, all processes: seconds, mails stored, sum of RSS, sum of Pss "
          "(shared pages counted once), sum of anonymous memory:")
    for seconds, stored, total, pss, anon in r.timeline:
        print(f"    {seconds:7.0f} s  {stored:7d}  {mib(total)}  {mib(pss)}  {mib(anon)}")
    print("  peak per process (sampled; VmHWM):")
    for pid, peak in sorted(r.window.peak_per_pid.items()):
        print(f"    {r.names.get(pid, pid)!s:<34} {mib(peak)}   {mib(r.hwm.get(pid, 0))}")
    print(f"  start, until the first mail is stored  {mib(r.start.peak_total)}  (migrations, "
          f"imports, the listener starting)")
    peak = r.window.peak_total
    hwm_sum = sum(r.hwm.values())
    ok = peak / MIB < TARGET_MIB
    print(f"  peak total RSS while draining        {mib(peak)}  (target < {TARGET_MIB:.0f} "
          f"MiB) {'OK' if ok else 'MISSED'}")
    print(f"  sum of the processes' VmHWM          {mib(hwm_sum)}  (an upper bound: their "
          f"peaks need not coincide)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=20_000)
    parser.add_argument("--corpus", choices=("realistic", "intake"), default="realistic")
    parser.add_argument("--big-mib", type=float, default=25.0,
                        help="The big mail's size; the default max_message_size is 25 MiB.")
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--skip-drain", action="store_true")
    parser.add_argument("--existing-database", action="store_true",
                        help="drain with the schema already made, as after a restart "
                             "(the daemon then runs no migration and never imports alembic)")
    args = parser.parse_args()
    print(f"memory benchmark: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"sqlite {sqlite3.sqlite_version}; sampling every {args.interval * 1000:.0f} ms")
    with tempfile.TemporaryDirectory(prefix="helpdesk-bench-") as tmp:
        work = Path(tmp)
        idle = 0
        if not args.skip_big:
            base, res = run_big(work, int(args.big_mib * MIB), args.interval)
            report_big(base, res)
            idle = res.idle
        if not args.skip_drain:
            report_drain(run_drain(work, args.mails, args.corpus, args.interval,
                                   args.existing_database), idle)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
