"""The outbox alone: CPU and SQL statements per delivered mail.

    python bench/outbox.py [--mails N] [--database-url postgresql+psycopg://...] [--profile]

Queues N acknowledgements in a fresh database (SQLite in a temporary directory unless
--database-url), then lets OutboxWorker.deliver_due hand them to an aiosmtpd sink in
this process, the way the daemon's outbox thread does (passes of up to 100 mails until
none is due). Reports the delivering thread's CPU time (time.thread_time: the sink's
thread is not counted) and the SQL statements it ran, per mail. bench/pipeline.py's
"send" stage is the same work measured inside the daemon, pipeline running beside it.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from intake import free_port
from sqlalchemy import event

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from helpdesk.config import settings as config  # noqa: E402
from helpdesk.outgoing import compose as mailout  # noqa: E402
from helpdesk.outgoing.outbox import OutboxWorker  # noqa: E402
from helpdesk.store import db  # noqa: E402


class Sink:
    """The relay: accepts everything, counts it."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        with self.lock:
            self.count += 1
        return "250 2.0.0 OK"


def settings_for(work: Path, relay_port: int, database_url: str) -> config.Settings:
    path = work / "bench.toml"
    path.write_text(
        "[helpdesk]\n"
        'name = "Bench Helpdesk"\n'
        'address = "support@example.test"\n'
        'domains = ["example.test"]\n'
        f'data_dir = "{work / "data"}"\n'
        + (f'database_url = "{database_url}"\n' if database_url else "")
        + 'secret = "bench-secret"\n'
        "[outgoing]\n"
        'relay_host = "127.0.0.1"\n'
        f"relay_port = {relay_port}\n"
    )
    return config.load(path)


def queue_mails(settings: config.Settings, engine, n: int) -> None:  # type: ignore[no-untyped-def]
    text = "Thank you for your mail; we will answer soon.\n" * 20
    with db.session_scope(engine) as session:
        for i in range(n):
            msg = mailout.build(settings, to=[f"customer{i}@customer.test"],
                                subject=f"[HD-{i}] Your request", text=text)
            mailout.queue(session, msg, kind="ack", ticket_id=None, mail_from="", automatic=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--per-pass", type=int, default=100,
                        help="rows per deliver_due call (the daemon: 100, or what a poke finds)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="cumulative", help="pstats order: tottime, ...")
    args = parser.parse_args()
    sink = Sink()
    sink.controller.start()
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url
        if database_url:
            sys.path.insert(0, str(REPO / "bench"))
            from pipeline import drop_database, fresh_database

            database_url = fresh_database(database_url)
        try:
            settings = settings_for(Path(tmp), sink.controller.port, database_url)
            db.upgrade(settings.database_url)
            engine = db.make_engine(settings.database_url)
            queue_mails(settings, engine, args.mails)
            worker = OutboxWorker(settings, engine)
            statements = 0

            def counted(*_args: object) -> None:
                nonlocal statements
                if threading.current_thread() is threading.main_thread():
                    statements += 1

            event.listen(engine, "before_cursor_execute", counted)
            # CPU time, not the waits for the relay and fsync
            profiler = cProfile.Profile(time.thread_time) if args.profile else None
            cpu, wall = time.thread_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            sent = 0
            while True:
                result = worker.deliver_due(limit=args.per_pass)
                sent += result.sent
                if not result.sent:
                    break
            if profiler:
                profiler.disable()
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
            engine.dispose()
        finally:
            if args.database_url:
                drop_database(database_url)
    sink.controller.stop()
    assert sent == args.mails == sink.count, (sent, args.mails, sink.count)
    print(f"outbox: {sent} mails, {engine.dialect.name}: {cpu / sent * 1000:.3f} ms CPU/mail, "
          f"{wall / sent * 1000:.3f} ms wall/mail, {statements / sent:.2f} SQL statements/mail")
    if profiler:
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(40)


if __name__ == "__main__":
    main()
