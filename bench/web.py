"""The agent desk's pages over a large database (not a test).

    python bench/web.py [--tickets 100000] [--messages 1000000] [--db sqlite|postgresql]
                        [--requests 100] [--keep]

Builds the schema with the real migrations (`db.upgrade`), fills it with bulk inserts of
made-up but shaped-like-life rows (contacts, tickets with spread statuses, queues,
priorities and assignees, conversations of customer mail, replies and notes with bodies
from a few hundred bytes to a few KiB, history events, some attachment rows, SLA timers
of the open tickets), then fills the full-text index the way the product does
(`store.search.rebuild`, what migration 0005 runs). A SQLite file is kept under
bench/.cache/ keyed by the sizes, so a second run skips the fill; PostgreSQL gets a
database of its own, dropped at the end (with --keep, one named by the sizes, kept and
reused the same way: drop it by hand when done).

Then the real daemon (`helpdesk run`, [web] enabled, scheduler off so that only the desk
reads) serves it; the bench signs in as agent alice (team support: queues support and
billing) through `helpdesk web login-link` and the confirm form, like a browser, and
times over HTTP on loopback: my tickets, unassigned, the billing queue sorted by
priority, a ticket page (a ticket with 20 messages), a search for a rare and a common
word. p50 and p95 over --requests sequential requests each, after a few warm-ups.

Baseline, same run and database: a bare starlette app under uvicorn in its own process
running each page's main query (queries.queue_rows, queries.messages, search.search)
with the same arguments and returning the rows as plain text; the ratio says what the
page adds on top of its main query (sign-in check, tab counts, SLA clocks, versions,
history, templates). Targets (issue #15): queue and ticket pages p95 < 50 ms, search
p95 < 100 ms.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "bench" / ".cache"
PG = os.environ.get("HELPDESK_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
FILL_VERSION = 1  # bump when the fill changes: the cached files are keyed by it
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ME = "alice"
MY_QUEUES = ("billing", "support")  # what alice (team support) sees with CONFIG below
TARGET_TICKET_MESSAGES = 20
AGENTS = ("alice", "bob", "carla", "dmitri", "erin", "farid", "lisa", "omar")
QUEUES = (("support", 60), ("billing", 25), ("ops", 15))
STATUSES = (("new", 2), ("open", 5), ("pending", 3), ("resolved", 15), ("closed", 75))
PRIORITY = (("low", 20), ("normal", 60), ("high", 15), ("critical", 5))
HEAD_WORDS = ("the to and i a you is it of for on in this we my not have with be that can "
        "please thanks printer invoice account password order payment login error email "
        "help hello regards issue refund update server access working since again today "
        "laptop vpn screen delivery shipping subscription licence backup network phone")
HEAD = HEAD_WORDS.split()
AGENTS_TOML = "".join(
    f'[[agent]]\nname = "{a}"\nemail = "{a}@staff.test"\n'
    f'teams = ["{"ops" if a == "omar" else "support"}"]\n'
    + ('role = "lead"\n' if a in ("lisa", "omar") else "") + "\n" for a in AGENTS
) + '[[team]]\nname = "support"\nlead = "lisa"\n\n[[team]]\nname = "ops"\nlead = "omar"\n'


def weighted(rng: random.Random, pairs: Sequence[tuple[str, int]]) -> str:
    return rng.choices([p[0] for p in pairs], [p[1] for p in pairs])[0]


# -- the fill ------------------------------------------------------------------------------

class Text:
    """Sentences of a Zipf-like vocabulary (real helpdesk words first, made-up ones
    after), combined into bodies; drawing whole sentences keeps a million bodies fast."""

    def __init__(self, rng: random.Random) -> None:
        letters = "abcdefghijklmnopqrstuvwxyz"
        words = HEAD + [f"{''.join(rng.choices(letters, k=rng.randint(4, 9)))}"
                        for _ in range(30_000)]
        weights = [1 / (i + 1) for i in range(len(words))]
        self.words = words
        self.sentences = [" ".join(rng.choices(words, weights, k=rng.randint(6, 22))).capitalize()
                          + "." for _ in range(20_000)]
        self.subjects = [" ".join(rng.choices(words[:3000], k=rng.randint(3, 8))).capitalize()
                         for _ in range(5_000)]
        self.rng = rng

    def body(self, reference: str) -> str:
        size = min(8000, max(200, int(self.rng.lognormvariate(math.log(700), 0.8))))
        out, n = [], 0
        while n < size:
            s = self.rng.choice(self.sentences)
            out.append(s)
            n += len(s) + 1
        cut = self.rng.randrange(len(out))
        out.insert(cut, f"Our reference is {reference}.")
        return "Hello,\n\n" + " ".join(out) + "\n\nRegards\n"


def _rows_sqlite(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    # the forms SQLAlchemy stores: naive UTC text for datetimes, JSON text for lists
    def one(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(v, list):
            return json.dumps(v)
        return v
    return [tuple(one(v) for v in r) for r in rows]


class Writer:
    """Bulk inserts through the driver: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, dbapi: Any, sqlite: bool) -> None:
        self.dbapi, self.sqlite = dbapi, sqlite

    def put(self, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        cols = ", ".join(f'"{c}"' for c in columns.split())
        if self.sqlite:
            marks = ", ".join("?" * len(columns.split()))
            self.dbapi.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})",
                                   _rows_sqlite(rows))
            return
        with self.dbapi.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row([json.dumps(v) if isinstance(v, list) else v for v in r])


TICKET_COLS = ("id subject status priority category queue assignee tags contact_id spam "
               "created_at updated_at first_response_at resolved_at closed_at")
MESSAGE_COLS = ("id ticket_id direction internal message_id msgid_key dedupe_key content_hash "
                "in_reply_to references from_addr from_name to cc subject body_text body_html "
                "raw_path route threaded_by defects size sent_date created_at")
EVENT_COLS = "id ticket_id at actor kind field old new detail"
ATTACHMENT_COLS = "id message_id filename content_type size sha256 inline content_id"


def message_counts(rng: random.Random, tickets: int, messages: int) -> list[int]:
    """Messages per ticket: one each, the rest spread at random; the middle ticket gets
    exactly TARGET_TICKET_MESSAGES (the ticket page measured)."""
    counts = [1] * tickets
    for _ in range(messages - tickets):
        counts[rng.randrange(tickets)] += 1
    target = tickets // 2
    spare = counts[target] - TARGET_TICKET_MESSAGES
    counts[target] = TARGET_TICKET_MESSAGES
    i = 0
    while spare != 0:  # keep the total: give or take the difference elsewhere
        j = (target + 1 + i) % tickets
        if spare > 0 or counts[j] > 1:
            step = 1 if spare > 0 else -1
            counts[j] += step
            spare -= step
        i += 1
    return counts


def target_ticket(tickets: int) -> int:
    return tickets // 2 + 1  # the ticket message_counts gives TARGET_TICKET_MESSAGES


def fill(url: str, tickets: int, messages: int) -> None:
    from sqlalchemy import text

    from helpdesk.store import db, search

    rng = random.Random(15)
    words = Text(rng)
    db.upgrade(url)
    engine = db.make_engine(url)
    sqlite = url.startswith("sqlite")
    counts = message_counts(rng, tickets, messages)
    contacts = max(1, tickets // 3)
    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        dbapi = raw.driver_connection
        if sqlite:  # a fresh file that is thrown away when the fill fails: no need to sync
            dbapi.execute("PRAGMA synchronous=OFF")
        w = Writer(dbapi, sqlite)
        w.put("contact", "id email name created_at",
              [(i, f"customer{i}@example{i % 97}.test", f"Customer {i}",
                NOW - timedelta(days=800)) for i in range(1, contacts + 1)])
        first = NOW - timedelta(days=730)
        span = (NOW - first).total_seconds()
        mid = msg_id = ev_id = att_id = 0
        target = target_ticket(tickets)
        batch = max(1, 2000 // max(1, messages // tickets))
        for start in range(1, tickets + 1, batch):
            t_rows, m_rows, e_rows, a_rows = [], [], [], []
            for tid in range(start, min(start + batch, tickets + 1)):
                status = weighted(rng, STATUSES)
                queue = "support" if tid == target else weighted(rng, QUEUES)
                # recent tickets are the open ones, old ones are done
                created = first + timedelta(seconds=span * (tid - 1) / tickets)
                if status in ("new", "open", "pending"):
                    created = max(created, NOW - timedelta(days=rng.uniform(0.1, 20)))
                assignee = "" if status == "new" and rng.random() < 0.7 else rng.choice(AGENTS)
                contact = rng.randint(1, contacts)
                customer = f"customer{contact}@example{contact % 97}.test"
                agent = assignee or rng.choice(AGENTS)
                subject = rng.choice(words.subjects)
                at = created
                ev = [(at, customer, "created", "", "", "", ""),
                      (at, "system", "ack", "", "", "", "")]
                if assignee:
                    ev.append((at + timedelta(minutes=5), "rules", "change", "assignee", "",
                               assignee, "rule: round-robin"))
                first_response = None
                for k in range(counts[tid - 1]):
                    msg_id += 1
                    if k:
                        at += timedelta(minutes=rng.randint(5, 60 * 24))
                    kind = "in" if k == 0 else rng.choices(("in", "out", "note"), (4, 5, 1))[0]
                    sender = customer if kind == "in" else f"{agent}@staff.test"
                    if kind == "out" and first_response is None:
                        first_response = at
                    m_rows.append((
                        msg_id, tid, "out" if kind == "out" else "in", kind == "note",
                        f"<m{msg_id}@bench.test>", f"{msg_id:064x}", f"d{msg_id}", "", "", "",
                        sender, "" if kind == "in" else agent.title(),
                        ["support@example.test"], [], ("Re: " if k else "") + subject,
                        words.body(f"ord{rng.randrange(max(1, messages // 4))}"), "", "",
                        "web" if kind == "note" else "smtp", "new" if k == 0 else "reply-to",
                        [], 0, at, at))
                    if rng.random() < 0.05:
                        att_id += 1
                        a_rows.append((att_id, msg_id, f"scan-{att_id}.pdf", "application/pdf",
                                       rng.randint(10_000, 900_000), f"{att_id:064x}", False, ""))
                if status != "new":
                    ev.append((created + timedelta(minutes=6), agent, "change", "status", "new",
                               "open", ""))
                if status not in ("new", "open"):
                    ev.append((at, agent, "change", "status", "open", status, ""))
                for e in ev:
                    ev_id += 1
                    e_rows.append((ev_id, tid, *e))
                done = at if status in ("resolved", "closed") else None
                t_rows.append((tid, subject, status, weighted(rng, PRIORITY), "", queue,
                               assignee, [], contact, False, created, at, first_response,
                               done, done if status == "closed" else None))
            w.put("ticket", TICKET_COLS, t_rows)
            w.put("message", MESSAGE_COLS, m_rows)
            w.put("event", EVENT_COLS, e_rows)
            w.put("attachment", ATTACHMENT_COLS, a_rows)
            mid += len(m_rows)
            dbapi.commit()  # batch by batch: SQLite's WAL is checkpointed as it goes
    finally:
        raw.close()
    loaded = time.perf_counter() - started
    with engine.begin() as conn:
        timers(conn, rng, sqlite)
    started = time.perf_counter()
    with engine.begin() as conn:
        search.rebuild(conn)
    if not sqlite:  # statistics and the visibility map, as autovacuum would have them
        # after the inserts (a test server may run with it off: index-only scans would
        # read every row); the product never runs ANALYZE on SQLite, and its plans with
        # statistics differ from those without
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    indexed = time.perf_counter() - started
    engine.dispose()
    print(f"  filled {tickets:,} tickets, {mid:,} messages in {loaded:.0f} s, "
          f"indexed in {indexed:.0f} s")


def timers(conn: Any, rng: random.Random, sqlite: bool) -> None:
    """The scheduler's rows for the open tickets: the next SLA step (some overdue), and a
    recorded resolution breach on some, so the SLA tabs count real rows."""
    from sqlalchemy import text

    open_ids = [r[0] for r in conn.execute(text(
        "SELECT id FROM ticket WHERE status IN ('new', 'open')"))]
    for tid in open_ids:
        due = NOW + timedelta(hours=rng.uniform(-24, 48))
        step = "breach" if rng.random() < 0.5 else "warn"
        conn.execute(text("INSERT INTO ticket_timer (ticket_id, due_at, key) "
                          "VALUES (:t, :d, :k)"),
                     {"t": tid, "d": due.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else due,
                      "k": f"sla:resolution:0:{step}"})
        if rng.random() < 0.1:
            conn.execute(text("INSERT INTO ticket_step (ticket_id, key, at, detail) "
                              "VALUES (:t, 'sla:first_response:0:breach', :a, '')"),
                         {"t": tid, "a": NOW.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite
                          else NOW})


def words_to_search(url: str, ticket: int) -> tuple[str, int, str, int]:
    """A rare word (an order reference in the measured ticket's first mail) and a common
    one (a helpdesk word in a large share of the messages), with how many messages hold
    each."""
    from sqlalchemy import text

    from helpdesk.store import db

    engine = db.make_engine(url)
    with db.session_scope(engine) as session:
        body = session.execute(text("SELECT body_text FROM message WHERE ticket_id = :t "
                                    "ORDER BY id LIMIT 1"), {"t": ticket}).scalar_one()
        rare = re.search(r"reference is (\w+)", body)[1]  # type: ignore[index]
        common = "printer"
        if session.get_bind().dialect.name == "sqlite":
            sql = "SELECT count(*) FROM message_search WHERE message_search MATCH :w"
        else:
            sql = "SELECT count(*) FROM message_search WHERE tsv @@ to_tsquery('simple', :w)"
        found = [int(session.execute(text(sql), {"w": w}).scalar_one()) for w in (rare, common)]
    engine.dispose()
    return rare, found[0], common, found[1]


# -- the servers -----------------------------------------------------------------------------

def serve_baseline(port: int, url: str) -> None:
    """The bare endpoints (its own process: `web.py --serve-baseline PORT URL`): each
    page's main query with the desk's arguments, the rows as plain text."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from helpdesk import clock
    from helpdesk.store import db, queries, search
    from helpdesk.store.queries import QueueQuery, Scope
    from helpdesk.web.queues import KEYS

    engine = db.make_engine(url)
    scope = Scope(ME, MY_QUEUES)

    # plain (sync) endpoints: starlette runs them in its thread pool, as the desk does
    def queue(request: Request) -> PlainTextResponse:
        p = request.query_params
        query = QueueQuery(view=request.path_params["view"], queue=p.get("queue", ""),
                           sort=p.get("sort", "priority"))
        with db.snapshot_scope(engine) as session:
            rows = queries.queue_rows(session, scope, query, KEYS, clock.now())
            return PlainTextResponse("\n".join(
                f"{r.ticket.id} {r.ticket.subject} {r.customer} {r.ticket.status}"
                for r in rows))

    def ticket(request: Request) -> PlainTextResponse:
        with db.snapshot_scope(engine) as session:
            found = queries.messages(session, int(request.path_params["id"]))
            return PlainTextResponse("\n\n".join(f"{m.from_addr} {m.subject}\n{m.body_text}"
                                                 for m in found))

    def find(request: Request) -> PlainTextResponse:
        with db.snapshot_scope(engine) as session:
            hits = search.search(session, request.query_params.get("q", ""),
                                 search.Filters(queues=list(MY_QUEUES)), 21)
            return PlainTextResponse("\n".join(f"{h.ticket_id} {h.subject} {h.snippet_text()}"
                                               for h in hits))

    app = Starlette(routes=[Route("/desk/queue/{view}", queue),
                            Route("/desk/ticket/{id:int}", ticket),
                            Route("/desk/search", find)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                http="h11")  # the daemon's listener uses h11 too


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=5)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"no HTTP answer at {url} after {timeout}s")


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, *args], stdout=out, stderr=out, cwd=REPO,
                                env={**os.environ, "PYTHONPATH": str(REPO)})


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def daemon_config(work: Path, url: str, port: int) -> Path:
    (work / "agents.toml").write_text(AGENTS_TOML)
    config = work / "helpdesk.toml"
    config.write_text(f"""[helpdesk]
name = "Bench Helpdesk"
address = "support@example.test"
domains = ["example.test"]
data_dir = "{work / 'data'}"
secret = "bench-secret"
database_url = "{url}"

[smtp]
host = "127.0.0.1"
port = {free_port()}

[http]
listen = ""
public = "127.0.0.1:{port}"

[web]
enabled = true

[scheduler]
enabled = false  # the fill wrote the timers; a first pass would sync every ticket

[queue.support]
team = "support"

[queue.billing]
team = "support"

[queue.ops]
team = "ops"

[sla.normal]
first_response = "8h"
resolution = "3d"

[sla.high]
first_response = "2h"
resolution = "1d"
""")
    return config


def sign_in(base: str, config: Path) -> Any:
    """An httpx client signed in as ME the way an agent does it with a link: open it,
    press the button (the link from `helpdesk web login-link`)."""
    import httpx

    out = subprocess.run([sys.executable, "-m", "helpdesk", "--config", str(config), "web",
                          "login-link", ME], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    link = out.stdout.splitlines()[0]
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=60)
    page = client.get(link)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]  # type: ignore[index]
    answer = client.post("/desk/login/confirm", data={
        "t": parse_qs(urlparse(link).query)["t"][0], "csrf_token": token})
    if answer.status_code != 303:
        raise SystemExit(f"sign-in refused: {answer.status_code} {answer.text[:300]}")
    return client


# -- measuring -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Page:
    label: str
    path: str
    target_ms: float
    shows: str  # a regex the desk's page must match: it showed what it should


def pages(ticket: int, rare: str, common: str) -> list[Page]:
    row = r'<a href="/desk/ticket/\d+">'
    return [
        Page("my tickets", "/desk/queue/mine", 50, row),
        Page("unassigned", "/desk/queue/unassigned", 50, row),
        Page("queue billing by priority", "/desk/queue/all?" + urlencode(
            {"queue": "billing", "sort": "priority"}), 50, row),
        Page(f"ticket ({TARGET_TICKET_MESSAGES} messages)", f"/desk/ticket/{ticket}", 50,
             re.escape(rare)),
        Page("search, rare word", "/desk/search?" + urlencode({"q": rare}), 100,
             f"<mark>{rare}</mark>"),
        Page("search, common word", "/desk/search?" + urlencode({"q": common}), 100,
             f"<mark>{common}</mark>"),
    ]


def timings(client: Any, path: str, n: int, shows: str = "") -> list[float]:
    out = []
    for i in range(n + 3):  # three to warm the caches, not counted
        started = time.perf_counter()
        answer = client.get(path)
        elapsed = time.perf_counter() - started
        if answer.status_code != 200 or (shows and i == 0 and not re.search(shows, answer.text)):
            raise SystemExit(f"{path}: {answer.status_code}, not the expected page:\n"
                             f"{answer.text[:2000]}")
        if i >= 3:
            out.append(elapsed * 1000)
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def measure(url: str, tickets: int, requests: int, work: Path) -> bool:
    import httpx

    ticket = target_ticket(tickets)
    rare, rare_n, common, common_n = words_to_search(url, ticket)
    print(f"  rare word {rare!r} in {rare_n:,} messages, common word {common!r} in "
          f"{common_n:,}")
    port, bare_port = free_port(), free_port()
    config = daemon_config(work, url, port)
    daemon = start(["-m", "helpdesk", "--config", str(config), "run"], work / "daemon.log")
    bare = start([__file__, "--serve-baseline", str(bare_port), url], work / "baseline.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/desk/login", daemon)
        wait_http(f"http://127.0.0.1:{bare_port}/desk/search", bare)
        desk = sign_in(f"http://127.0.0.1:{port}", config)
        baseline = httpx.Client(base_url=f"http://127.0.0.1:{bare_port}", timeout=60)
        print(f"\n  {'page':<28} {'desk p50':>9} {'p95':>7}   {'bare p50':>9} {'p95':>7}   "
              f"{'p95 ratio':>9}   target")
        met = True
        for page in pages(ticket, rare, common):
            d = timings(desk, page.path, requests, page.shows)
            b = timings(baseline, page.path, requests)
            ok = pct(d, 95) < page.target_ms
            met &= ok
            print(f"  {page.label:<28} {pct(d, 50):7.1f}ms {pct(d, 95):5.1f}ms   "
                  f"{pct(b, 50):7.1f}ms {pct(b, 95):5.1f}ms   {pct(d, 95) / pct(b, 95):9.1f}   "
                  f"p95 < {page.target_ms:.0f} ms {'met' if ok else 'MISSED'}")
        desk.close()
        baseline.close()
        return met
    finally:
        stop(daemon)
        stop(bare)


def admin(statement: str, name: str) -> None:
    import psycopg

    with psycopg.connect(PG.replace("postgresql+psycopg", "postgresql") + "/postgres",
                         autocommit=True) as conn:
        conn.execute(statement.format(name))  # type: ignore[arg-type]  (our own name)


def sqlite_database(tickets: int, messages: int) -> Iterator[str]:
    """The cached file for these sizes, filled first when missing."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"web-v{FILL_VERSION}-{tickets}t-{messages}m.db"
    if path.exists():
        print(f"  using {path.relative_to(REPO)} (delete it to fill again)")
    else:
        partial = path.with_suffix(".filling")
        for leftover in CACHE.glob(partial.name + "*"):
            leftover.unlink()
        fill(f"sqlite:///{partial}", tickets, messages)
        partial.rename(path)
    yield f"sqlite:///{path}"


def pg_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(PG.replace("postgresql+psycopg", "postgresql") + "/postgres") as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (name,)).fetchone() is not None


def postgresql_database(tickets: int, messages: int, keep: bool) -> Iterator[str]:
    """A database of its own, filled and dropped at the end; with `keep`, one named by
    the sizes that is filled once and reused (the fill takes long), like the SQLite file."""
    if keep:
        name = f"helpdesk_web_bench_v{FILL_VERSION}_{tickets}t_{messages}m"
        if pg_exists(name):
            print(f"  using database {name} (drop it to fill again)")
        else:
            partial = f"{name}_filling"
            admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", partial)
            admin("CREATE DATABASE {}", partial)
            fill(f"{PG}/{partial}", tickets, messages)
            admin("ALTER DATABASE {}", f"{partial} RENAME TO {name}")
        yield f"{PG}/{name}"
        return
    name = f"helpdesk_web_bench_{uuid.uuid4().hex[:8]}"
    admin("CREATE DATABASE {}", name)
    try:
        url = f"{PG}/{name}"
        fill(url, tickets, messages)
        yield url
    finally:
        admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--keep", action="store_true",
                        help="PostgreSQL: keep the filled database and reuse it next time")
    parser.add_argument("--serve-baseline", nargs=2, metavar=("PORT", "URL"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(int(args.serve_baseline[0]), args.serve_baseline[1])
        return
    if args.messages < args.tickets or args.tickets < 2 \
            or args.messages < args.tickets + TARGET_TICKET_MESSAGES:
        parser.error("need at least 2 tickets and more messages than tickets + 20")
    print(f"web desk benchmark, {args.db}: {args.tickets:,} tickets, {args.messages:,} "
          f"messages; {args.requests} requests a page; {os.cpu_count()} CPUs")
    databases = sqlite_database(args.tickets, args.messages) if args.db == "sqlite" \
        else postgresql_database(args.tickets, args.messages, args.keep)
    work = Path(tempfile.mkdtemp(prefix="helpdesk-web-bench-"))
    try:
        for url in databases:
            met = measure(url, args.tickets, args.requests, work)
            print(f"\n  all targets met: {'yes' if met else 'NO'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
