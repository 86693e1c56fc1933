"""One scheduler pass over many tickets, of which a share are due (not a test).

    PYTHONPATH=. python bench/escalation.py [--tickets N] [--due 0.01] [--db sqlite|postgresql]

Rows are generated with bulk inserts (executemany on SQLite, COPY on PostgreSQL).
90% of the tickets are closed with no timer, 9% are open with a timer in the
future, `--due` of them are open and past their first-response SLA (a warning
and a breach each). It prints the query plans of the two queries a pass makes,
then times: the pass that escalates the due tickets, and a pass with nothing due.

Baseline, same run and database server: the same passes over a second database holding
only the due tickets and the 1,000 most recently changed open ones, none closed, so both
passes look at the same tickets. A ratio near 1 says a pass costs what the tickets it
acts on cost, whatever the number of closed and not-due tickets.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice

from sqlalchemy import Engine, text

from helpdesk import clock
from helpdesk.config import settings as config
from helpdesk.schedule import sweep as jobs
from helpdesk.schedule.sla import SlaContext
from helpdesk.store import db

PG = os.environ.get("HELPDESK_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BASE_OPEN = 1_000  # open tickets, not due, in the baseline's table
COLS = ("id", "subject", "status", "priority", "category", "queue", "assignee", "tags",
        "spam", "created_at", "updated_at")


def settings_for(url: str, data_dir: str) -> config.Settings:
    return config.parse({"helpdesk": {"database_url": url, "data_dir": data_dir,
                                      "secret": "bench"},
                         "sla": {"normal": {"first_response": "8h", "resolution": "30d"}}})


Row = tuple[tuple[object, ...], datetime | None]


def rows(n: int, due: int) -> Iterator[Row]:
    """(ticket row, timer due_at or None); due tickets first, then open ones, newest first."""
    for i in range(1, n + 1):
        # changes spread over time like a real desk's: one every few seconds
        if i <= due:
            created = NOW - timedelta(hours=9, seconds=i)
            status, timer = "new", NOW - timedelta(hours=1)
        elif i <= due + n * 9 // 100:
            created = NOW - timedelta(hours=1, seconds=i * 2)
            status, timer = "open", NOW + timedelta(hours=5)
        else:
            created, status, timer = NOW - timedelta(days=90, seconds=i), "closed", None
        yield (i, f"ticket {i}", status, "normal", "", "support", "", "[]", False,
               created, created), timer


def load_sqlite(engine: Engine, data: Iterable[Row]) -> None:
    raw = engine.raw_connection()
    cur = raw.cursor()
    batch, timers = [], []
    iso = lambda d: d.strftime("%Y-%m-%d %H:%M:%S.000000")  # noqa: E731  (SQLAlchemy's format)
    for row, timer in data:
        batch.append((*row[:9], iso(row[9]), iso(row[10])))
        if timer is not None:
            timers.append((row[0], iso(timer), "sla:first_response:0:breach"))
        if len(batch) >= 50_000:
            cur.executemany(f"INSERT INTO ticket ({','.join(COLS)}) VALUES "
                            f"({','.join('?' * len(COLS))})", batch)
            batch.clear()
    if batch:
        cur.executemany(f"INSERT INTO ticket ({','.join(COLS)}) VALUES "
                        f"({','.join('?' * len(COLS))})", batch)
    cur.executemany("INSERT INTO ticket_timer (ticket_id, due_at, key) VALUES (?,?,?)", timers)
    raw.commit()
    cur.execute("ANALYZE")
    raw.close()


def load_pg(engine: Engine, data: Iterable[Row]) -> None:
    raw = engine.raw_connection()
    cur = raw.cursor()
    tickets, timers = io.StringIO(), io.StringIO()
    n = 0
    for row, timer in data:
        n += 1
        tickets.write("\t".join(str(v).lower() if isinstance(v, bool) else str(v)
                                for v in row) + "\n")
        if timer is not None:
            timers.write(f"{row[0]}\t{timer}\tsla:first_response:0:breach\n")
    with cur.copy(f"COPY ticket ({','.join(COLS)}) FROM STDIN") as cp:
        cp.write(tickets.getvalue())
    with cur.copy("COPY ticket_timer (ticket_id, due_at, key) FROM STDIN") as cp:
        cp.write(timers.getvalue())
    cur.execute("SELECT setval('ticket_id_seq', %s)", (n,))
    raw.commit()
    cur.execute("ANALYZE")
    raw.commit()
    raw.close()


def plans(engine, dialect: str) -> None:  # type: ignore[no-untyped-def]
    explain = "EXPLAIN QUERY PLAN" if dialect == "sqlite" else "EXPLAIN"
    since = (NOW - jobs.SLACK).strftime("%Y-%m-%d %H:%M:%S")
    queries = {
        "changed tickets": f"SELECT id, updated_at FROM ticket WHERE updated_at > '{since}'",
        "due timers": f"SELECT ticket_id FROM ticket_timer WHERE due_at <= "
                      f"'{NOW:%Y-%m-%d %H:%M:%S}' ORDER BY due_at LIMIT {jobs.BATCH}",
    }
    with engine.connect() as conn:
        for name, sql in queries.items():
            print(f"  plan, {name}:")
            for row in conn.execute(text(f"{explain} {sql}")):
                print("    " + " ".join(str(c) for c in row))


def prime_state(engine, settings: config.Settings) -> None:  # type: ignore[no-untyped-def]
    """As after earlier passes: the watermark at the newest change, config known."""
    with engine.begin() as conn:
        newest = conn.execute(text("SELECT max(updated_at) FROM ticket")).scalar()
        newest = newest if isinstance(newest, datetime) else datetime.fromisoformat(newest)
        newest = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
        for name, value in (("watermark", newest.isoformat()),
                            ("config", SlaContext(settings).fingerprint())):
            conn.execute(text("INSERT INTO scheduler_state (name, value) VALUES (:n, :v)"),
                         {"n": name, "v": value})


@dataclass
class Desk:
    """One database with its settings, and what the daemon's runner keeps between passes."""

    settings: config.Settings
    engine: Engine
    synced: dict[int, datetime] = field(default_factory=dict)

    def run(self, at: datetime) -> jobs.PassReport:
        return jobs.run_pass(self.settings, self.engine, at, synced=self.synced)


def make_desk(dialect: str, name: str, tmp: str, data: Iterable[Row]) -> Desk:
    """A fresh database `name` loaded with `data`, primed as after earlier passes."""
    data_dir = os.path.join(tmp, name)
    os.makedirs(data_dir)
    if dialect == "sqlite":
        url = f"sqlite:///{data_dir}/bench.db"
    else:
        import psycopg

        with psycopg.connect(PG.replace("postgresql+psycopg", "postgresql") + "/postgres",
                             autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
        url = f"{PG}/{name}"
    settings = settings_for(url, data_dir)
    db.upgrade(url)
    engine = db.make_engine(url)
    (load_sqlite if dialect == "sqlite" else load_pg)(engine, data)
    prime_state(engine, settings)
    return Desk(settings, engine)


def bench(dialect: str, n: int, share: float) -> None:
    tmp = tempfile.mkdtemp(prefix="hd-bench-")
    due = int(n * share)
    started = time.perf_counter()
    desk = make_desk(dialect, "helpdesk_bench", tmp, rows(n, due))
    print(f"{dialect}: {n:,} tickets, {due:,} due, loaded in {time.perf_counter() - started:.1f}s")
    plans(desk.engine, dialect)
    small = list(islice(rows(n, due), due + BASE_OPEN))
    base = make_desk(dialect, "helpdesk_bench_base", tmp, small)
    print(f"  baseline: {len(small):,} tickets, the {due:,} due and the "
          f"{len(small) - due:,} newest open ones, none closed")
    clock.freeze(NOW)
    base_first, first = base.run(NOW), desk.run(NOW)
    ratio = first.seconds / base_first.seconds
    print(f"  pass with {due:,} due: {first.seconds * 1000:,.0f} ms "
          f"({len(first.done):,} steps, looked at {first.looked_at:,} tickets, "
          f"{first.seconds * 1000 / max(1, first.looked_at):.1f} ms per ticket looked at)")
    print(f"    baseline: {base_first.seconds * 1000:,.0f} ms ({len(base_first.done):,} steps, "
          f"looked at {base_first.looked_at:,} tickets); ratio {ratio:.2f}")
    at = NOW + timedelta(minutes=1)
    for label, times in (("nothing due", 1), ("nothing due (again, best of 5)", 5)):
        pairs = [(base.run(at), desk.run(at)) for _ in range(times)]  # in turn
        base_s = min(b.seconds for b, _ in pairs)
        big_s = min(r.seconds for _, r in pairs)
        print(f"  pass with {label}: {big_s * 1000:,.1f} ms (looked at "
              f"{max(r.looked_at for _, r in pairs)} tickets); baseline "
              f"{base_s * 1000:,.1f} ms; ratio {big_s / base_s:.2f}")
    print(f"  pass over {n:,} tickets / the same pass over {len(small):,}: {ratio:.2f} "
          f"(x{n / len(small):,.0f} the tickets; 1 means the closed and not-due ones cost nothing)")
    desk.engine.dispose()
    base.engine.dispose()
    shutil.rmtree(tmp, ignore_errors=True)  # a million-ticket SQLite run leaves ~300 MB
    if dialect == "postgresql":
        drop_databases(("helpdesk_bench", "helpdesk_bench_base"))


def drop_databases(names: Iterable[str]) -> None:
    import psycopg

    with psycopg.connect(PG.replace("postgresql+psycopg", "postgresql") + "/postgres",
                         autocommit=True) as conn:
        for name in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--due", type=float, default=0.01)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    for dialect in (("sqlite", "postgresql") if args.db == "both" else (args.db,)):
        bench(dialect, args.tickets, args.due)


if __name__ == "__main__":
    main()
