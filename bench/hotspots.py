"""Where a mail's CPU goes: the daemon's pipeline and outbox in this one process, profiled.

    python bench/hotspots.py [--mails N] [--corpus realistic|intake] [--top K]
                            [--sort tottime|cumtime]

bench/pipeline.py times the real daemon end to end; this one answers the next question,
which functions to make cheaper. N mails (the same corpora as bench/memory.py: with the
realistic one, a third of each 500 after the first answer tickets opened before them) are
written into a fresh daemon's spool, then the daemon's own Pipeline drains them and its
OutboxWorker hands the acknowledgements to an aiosmtpd sink on loopback, in this one
thread, a batch and a delivery round in turn (the daemon runs them in two threads; one
thread keeps the profile whole). Printed: this thread's CPU ms per stored mail without
the profiler, SQL statements per mail, CPU ms per mail by pipeline stage (the daemon's
StageTimes), then a second, profiled drain: the top K functions and the helpdesk's own
functions by cumulative time. The profiler's own cost inflates small functions that are
called often: read its figures as proportions.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

from memory import fill_spool
from pipeline import Sink

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import event  # noqa: E402

from helpdesk.config import settings as config  # noqa: E402
from helpdesk.daemon import Daemon  # noqa: E402
from helpdesk.store import db  # noqa: E402


def write_config(work: Path, relay_port: int) -> Path:
    path = work / "helpdesk.toml"
    path.write_text(
        "[helpdesk]\n"
        'name = "Bench Helpdesk"\n'
        'address = "support@example.test"\n'
        'domains = ["example.test"]\n'
        f'data_dir = "{work / "daemon"}"\n'
        'secret = "bench-secret"\n'
        "[outgoing]\n"
        'relay_host = "127.0.0.1"\n'
        f"relay_port = {relay_port}\n"
    )
    return path


def drain(daemon: Daemon) -> int:
    """The pipeline's batches and the outbox's deliveries, alternately, until both are done."""
    stored = 0
    while True:
        outcomes = daemon.pipeline.process_batch()
        stored += sum(o.kind == "stored" for o in outcomes)
        sent = daemon.outbox.deliver_due()
        if not outcomes and not sent.sent:
            return stored


def run(n: int, corpus: str, profiled: bool) -> tuple[float, int, int, Daemon, pstats.Stats | None]:
    work = Path(tempfile.mkdtemp(prefix="hd-profile-"))
    sink = Sink()
    settings = config.load(write_config(work, sink.port))
    fill_spool(settings.data_dir / "spool", n, corpus)
    db.upgrade(settings.database_url)
    daemon = Daemon(settings)
    statements = 0

    def count(*_args: object) -> None:
        nonlocal statements
        statements += 1

    assert daemon.engine is not None
    event.listen(daemon.engine, "before_cursor_execute", count)
    event.listen(daemon.pipeline.writer, "before_cursor_execute", count)
    # the profiler's clock is the wall's (a CPU clock is a system call per function call,
    # which drowns the small functions): the commit's fsync and the relay's answers show
    # as time in sqlite3's commit, posix.fsync and socket reads
    profiler = cProfile.Profile() if profiled else None
    cpu = time.thread_time()
    if profiler:
        profiler.enable()
    stored = drain(daemon)
    if profiler:
        profiler.disable()
    cpu = time.thread_time() - cpu
    sink.stop()
    stats = pstats.Stats(profiler, stream=io.StringIO()) if profiler else None
    return cpu, stored, statements, daemon, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mails", type=int, default=1000)
    ap.add_argument("--corpus", choices=("realistic", "intake"), default="realistic")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--sort", choices=("tottime", "cumtime"), default="tottime")
    args = ap.parse_args()
    print(f"profile: {args.mails} mails of the {args.corpus} corpus, in one process")
    plain_cpu, stored, statements, daemon, _ = run(args.mails, args.corpus, profiled=False)
    print(f"  without the profiler: {plain_cpu / stored * 1000:.2f} ms CPU per stored mail "
          f"({stored} stored), {statements / stored:.1f} SQL statements per mail")
    print("  by stage, ms CPU per mail:")
    for name, total in sorted(daemon.pipeline.times.totals().items()):
        print(f"    {name:8s} {total.cpu / stored * 1000:6.2f}")
    cpu, stored, _, _, stats = run(args.mails, args.corpus, profiled=True)
    print(f"  with the profiler: {cpu / stored * 1000:.2f} ms CPU per stored mail; "
          f"top {args.top} by {args.sort}:")
    assert stats is not None
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats(args.sort).print_stats(args.top)
    stats.sort_stats("cumtime").print_stats("helpdesk/", args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
