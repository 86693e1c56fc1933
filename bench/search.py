"""Full-text search over many messages (not a test).

    PYTHONPATH=. python bench/search.py [--messages 20000] [--db sqlite|postgresql|both]

Fills a fresh database with N messages (5 per ticket) of made-up words (a Zipf-like
vocabulary, so some words are in most messages and some in a few), builds the index the
way migration 0005 backfills it, and times `store.search.search` for a rare word, a
common word, a phrase and a filtered two-word query (a page of 20 hits with snippets).

Baseline, same run and database: a bare SELECT of the same 20 messages by id, i.e. what
showing the page would cost if the matching ids were already known. The ratio says
what finding, ranking and snippeting add on top of reading the rows.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from helpdesk.store import db, search
from helpdesk.store.models import Message, Ticket

PG = os.environ.get("HELPDESK_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PER_TICKET = 5
RUNS = 30


def vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [f"{''.join(rng.choices(letters, k=rng.randint(3, 9)))}{i}" for i in range(size)]


def fill(engine: Engine, n: int, rng: random.Random) -> list[str]:
    """n messages on n/PER_TICKET tickets; returns the vocabulary, most common word first."""
    words = vocabulary(rng)
    cum = list(itertools.accumulate(1 / (i + 1) for i in range(len(words))))
    tickets = [{"id": t, "subject": " ".join(rng.choices(words[:2000], k=5)),
                "status": rng.choice(["new", "open", "pending", "resolved", "closed"]),
                "priority": "normal", "category": "", "queue": rng.choice(["support", "billing"]),
                "assignee": rng.choice(["", "alice", "bob"]), "tags": [], "spam": False,
                "created_at": NOW, "updated_at": NOW}
               for t in range(1, n // PER_TICKET + 2)]
    messages = []
    for i in range(1, n + 1):
        t = tickets[(i - 1) // PER_TICKET]
        messages.append({
            "id": i, "ticket_id": t["id"], "direction": "in", "internal": False,
            "message_id": f"m{i}@bench.test", "msgid_key": "", "dedupe_key": f"d{i}",
            "content_hash": "", "in_reply_to": "", "references": "",
            "from_addr": f"customer{i % 997}@example{i % 13}.test", "from_name": "Customer",
            "to": ["support@example.test"], "cc": [], "subject": f"Re: {t['subject']}",
            "body_text": " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(40, 160))),
            "body_html": "", "raw_path": "", "route": "bench", "threaded_by": "", "defects": [],
            "size": 0, "sent_date": NOW, "created_at": NOW - timedelta(minutes=n - i)})
    with engine.begin() as conn:
        conn.execute(Ticket.__table__.insert(), tickets)  # type: ignore[attr-defined]
        for start in range(0, n, 5000):
            conn.execute(Message.__table__.insert(),  # type: ignore[attr-defined]
                         messages[start:start + 5000])
    return words


def timed(fn: Callable[[], object]) -> list[float]:
    fn()  # warm the caches once
    out = []
    for _ in range(RUNS):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def figures(times: list[float]) -> str:
    p95 = sorted(times)[int(len(times) * 0.95) - 1]
    return f"median {statistics.median(times) * 1000:7.2f} ms, p95 {p95 * 1000:7.2f} ms"


def bench(dialect: str, n: int) -> None:
    tmp = tempfile.mkdtemp(prefix="hd-search-bench-")
    name = f"helpdesk_search_bench_{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp}/bench.db" if dialect == "sqlite" else f"{PG}/{name}"
    if dialect == "postgresql":
        admin("CREATE DATABASE {}", name)
    try:
        db.upgrade(url)
        engine = db.make_engine(url)
        started = time.perf_counter()
        words = fill(engine, n, random.Random(7))
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        with engine.begin() as conn:
            search.rebuild(conn)
        with engine.begin() as conn:  # fresh statistics, as autovacuum would have them
            conn.execute(text("ANALYZE"))
        built = time.perf_counter() - started
        print(f"{dialect}: {n:,} messages loaded in {loaded:.1f}s, indexed in {built:.1f}s "
              f"({built / n * 1e6:.0f} µs a message)")
        queries = [("rare word", words[15_000], search.Filters()),
                   ("common word", words[0], search.Filters()),
                   ("phrase", f'"{words[0]} {words[1]}"', search.Filters()),
                   ("two words, open tickets in billing", f"{words[3]} {words[40]}",
                    search.Filters(statuses=["open"], queues=["billing"]))]
        for label, query, filters in queries:
            with db.session_scope(engine) as session:
                hits = search.search(session, query, filters, limit=20)
                ids = [h.message_id for h in hits] or [1]

                def run_search(q: str = query, f: search.Filters = filters) -> None:
                    search.search(session, q, f, limit=20)

                def run_base(ids: list[int] = ids) -> None:
                    session.execute(text(
                        "SELECT m.id, m.ticket_id, m.subject, m.body_text, t.subject "
                        "FROM message m JOIN ticket t ON t.id = m.ticket_id "
                        f"WHERE m.id IN ({','.join(map(str, ids))})")).all()

                s, b = timed(run_search), timed(run_base)
            print(f"  {label:<36} {len(hits):>2} hits  search: {figures(s)}")
            print(f"  {'':<36} {'':>7}  baseline: {figures(b)};  ratio "
                  f"{statistics.median(s) / statistics.median(b):.1f}")
        engine.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if dialect == "postgresql":
            admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


def admin(statement: str, name: str) -> None:
    import psycopg

    with psycopg.connect(PG.replace("postgresql+psycopg", "postgresql") + "/postgres",
                         autocommit=True) as conn:
        conn.execute(statement.format(name))  # type: ignore[arg-type]  (our own name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    for dialect in (("sqlite", "postgresql") if args.db == "both" else (args.db,)):
        bench(dialect, args.messages)


if __name__ == "__main__":
    main()
