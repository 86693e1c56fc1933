"""Crash tests: SIGKILL the real daemon (a subprocess) and check that nothing acknowledged is lost.

The promise under test (STYLE.md): no mail is acknowledged until it is on disk, and no
mail is deleted until it is stored. A mail that got 250 must become exactly one
message after a restart, and its customer must get exactly one acknowledgement. The
one documented exception (outgoing/outbox.py) is a crash between the relay's 250 and the
"sent" commit: that mail may be acknowledged twice, so a duplicate is accepted only
when it fits that window.
"""

from __future__ import annotations

import contextlib
import email.policy
import itertools
import os
import queue
import random
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlmodel import func, select

from helpdesk.config.settings import Settings
from helpdesk.rules import Decision, MailContext
from helpdesk.spool import MAX_RECOVERIES, Envelope, Spool
from helpdesk.store import blobs, db
from helpdesk.store.models import Contact, Message, Outbox, Quarantine, Ticket
from tests.helpers import (
    REPO,
    RelaySink,
    drained,
    engine_for,
    free_port,
    log_on_failure,
    make_mail,
    outbox_rows,
    run_cli,
    run_pipeline,
    spool_entries,
    wait_until,
)

BURST = 200
CONNECTIONS = 20
KILL_AFTER = 80


# -- the daemon as a real process --------------------------------------------------


class DaemonProcess:
    """`python -m helpdesk --config X run` in a subprocess; its log goes to a file."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self.settings.smtp.port

    def start(self, timeout: float = 30.0) -> DaemonProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "helpdesk", "--config", str(self.settings.source), "run"],
                stdout=log, stderr=log, env=env, cwd=REPO)
        wait_until(self._answers, timeout, interval=0.05, what="the daemon to answer SMTP")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=2) as client:
                return client.noop()[0] == 250
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed, nothing is finished."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def daemon_process(tmp_path: Path) -> Iterator[Callable[[Settings], DaemonProcess]]:
    started: list[DaemonProcess] = []

    def make(settings: Settings) -> DaemonProcess:
        d = DaemonProcess(settings, tmp_path / "daemon.log")
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


@pytest.fixture
def process_settings(make_settings: Callable[..., Settings], relay: RelaySink) -> Settings:
    """A fixed SMTP port (the test must know it from outside) and the relay sink."""
    return make_settings({
        "smtp": {"port": free_port()},
        "outgoing": {"relay_host": "127.0.0.1", "relay_port": relay.port},
    })


# -- what the database and the spool hold -------------------------------------------


def stored_message_ids(settings: Settings) -> Counter[str]:
    with db.session_scope(engine_for(settings)) as session:
        rows = session.exec(select(Message.message_id).where(Message.direction == "in")).all()
    return Counter(rows)


def acks_by_original(relay: RelaySink) -> Counter[str]:
    return Counter(str(r.message["In-Reply-To"]).strip("<>") for r in relay.received)


# -- a burst of concurrent SMTP clients ---------------------------------------------


@dataclass
class BurstResult:
    accepted: list[str] = field(default_factory=list)  # Message-IDs that got 250
    failed: dict[str, str] = field(default_factory=dict)  # Message-ID -> what the client saw
    lock: threading.Lock = field(default_factory=threading.Lock)
    enough: threading.Event = field(default_factory=threading.Event)
    kill_after: int = 0

    def ok(self, msgid: str) -> None:
        with self.lock:
            self.accepted.append(msgid)
            if self.kill_after and len(self.accepted) >= self.kill_after:
                self.enough.set()

    def fail(self, msgid: str, why: str) -> None:
        with self.lock:
            self.failed[msgid] = why


def burst_mails(count: int) -> list[tuple[str, str, bytes]]:
    """(Message-ID, envelope sender, bytes); one sender each, so no ack is rate limited."""
    mails = []
    for i in range(count):
        sender = f"customer{i}@customer.test"
        msgid = f"crash-{i}@customer.test"
        msg = make_mail(sender=f"Customer {i} <{sender}>", subject=f"Crash burst mail {i}",
                        body=f"Mail number {i} of the burst.\n", message_id=f"<{msgid}>")
        mails.append((msgid, sender, msg.as_bytes(policy=email.policy.SMTP)))
    return mails


def _client_thread(port: int, work: queue.Queue[tuple[str, str, bytes]],
                   result: BurstResult) -> None:
    client: smtplib.SMTP | None = None
    try:
        while True:
            try:
                msgid, sender, raw = work.get_nowait()
            except queue.Empty:
                return
            try:
                if client is None:
                    client = smtplib.SMTP("127.0.0.1", port, timeout=20)
                    client.ehlo()
                code, reply = client.mail(sender)
                if code == 250:
                    code, reply = client.rcpt("support@example.test")
                if code != 250:
                    result.fail(msgid, f"{code} {reply!r}")
                    client.rset()
                    continue
                code, reply = client.data(raw)
                if code == 250:
                    result.ok(msgid)
                else:
                    result.fail(msgid, f"{code} {reply!r}")
            except (OSError, smtplib.SMTPException) as err:
                result.fail(msgid, f"{type(err).__name__}: {err}")
                if client is not None:
                    client.close()
                client = None
    finally:
        if client is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                client.quit()
            client.close()


def send_burst(port: int, mails: list[tuple[str, str, bytes]], connections: int,
               result: BurstResult) -> list[threading.Thread]:
    work: queue.Queue[tuple[str, str, bytes]] = queue.Queue()
    for mail in mails:
        work.put(mail)
    threads = [threading.Thread(target=_client_thread, args=(port, work, result), daemon=True)
               for _ in range(connections)]
    for t in threads:
        t.start()
    return threads


# -- the scenarios ----------------------------------------------------------------


def test_sigkill_in_the_middle_of_a_burst_loses_no_acknowledged_mail_and_duplicates_nothing(
    process_settings: Settings, relay: RelaySink,
    daemon_process: Callable[[Settings], DaemonProcess],
) -> None:
    settings = process_settings
    daemon = daemon_process(settings).start()
    result = BurstResult(kill_after=KILL_AFTER)
    threads = send_burst(daemon.port, burst_mails(BURST), CONNECTIONS, result)

    assert result.enough.wait(60), f"only {len(result.accepted)} mails got 250:\n{daemon.log()}"
    daemon.kill()
    relayed_before_kill = len(relay.received)
    for t in threads:
        t.join(60)
    with result.lock:
        accepted = list(result.accepted)
    assert len(accepted) + len(result.failed) == BURST
    assert len(set(accepted)) == len(accepted)
    left_behind = spool_entries(settings, "incoming") + spool_entries(settings, "work")
    assert left_behind, "the kill came too late to leave work in the spool; nothing was tested"

    daemon.start()
    wait_until(lambda: drained(settings) and set(accepted) <= set(stored_message_ids(settings)),
               timeout=60, interval=0.2, what="the restarted daemon to drain")

    stored = stored_message_ids(settings)
    lost = [m for m in accepted if stored[m] != 1]
    assert lost == [], f"acknowledged with 250 but not stored exactly once: {lost}"
    assert [m for m, n in stored.items() if n > 1] == []
    # a mail the client saw fail may or may not be stored (its MTA would retry, and the
    # dedupe key makes that retry harmless); either way nothing else appears
    assert set(stored) <= set(accepted) | set(result.failed)

    rows = outbox_rows(settings)
    assert len(rows) == len(stored), "one acknowledgement queued per stored mail"
    assert all(r.status == "sent" for r in rows)
    acks = acks_by_original(relay)
    assert [m for m in stored if acks[m] == 0] == [], "a stored mail got no acknowledgement"
    assert set(acks) <= set(stored)
    _duplicate_acks_only_from_the_documented_window(acks, relay, relayed_before_kill, rows)


def _duplicate_acks_only_from_the_documented_window(
    acks: Counter[str], relay: RelaySink, relayed_before_kill: int, rows: list[Outbox],
) -> None:
    """outbox: a crash between the relay's 250 and the 'sent' commit may send one mail twice.

    The outbox sends one mail at a time, so at most one ack can be caught in that window: its
    first copy reached the relay before the kill, its row was claimed again after the restart.
    """
    dupes = [m for m, n in acks.items() if n > 1]
    if not dupes:
        return
    assert len(dupes) == 1 and acks[dupes[0]] == 2, f"duplicate acknowledgements: {dupes}"
    firsts = [i for i, r in enumerate(relay.received)
              if str(r.message["In-Reply-To"]).strip("<>") == dupes[0]]
    assert firsts[0] < relayed_before_kill <= firsts[1], "duplicate not caused by the kill"
    row = next(r for r in rows if dupes[0] in r.raw.decode(errors="replace"))
    assert row.attempts == 2, "the duplicated ack was not claimed again after the restart"


SPOOLED = 400
KILLS = 4


def stored_count(settings: Settings) -> int:
    with db.session_scope(engine_for(settings)) as session:
        return int(session.exec(select(func.count()).select_from(Message)
                                .where(Message.direction == "in")).one())


def test_sigkill_at_random_points_while_draining_a_spooled_burst_loses_and_doubles_nothing(
    process_settings: Settings, relay: RelaySink,
    daemon_process: Callable[[Settings], DaemonProcess],
) -> None:
    """The pipeline takes spooled mail in batches (one transaction, a savepoint each).
    Killed anywhere in a batch (processing, writing its files, committing, deleting its
    spool entries) or while acknowledgements go out, and restarted, the daemon stores
    each mail exactly once and queues its acknowledgement exactly once."""
    settings = process_settings
    db.upgrade(settings.database_url)
    spool = Spool(settings.data_dir / "spool")
    mails = burst_mails(SPOOLED)
    for _, sender, raw in mails:  # acknowledged with 250: in the spool, durably
        spool.put(raw, Envelope(route="smtp", mail_from=sender,
                                rcpt_tos=("support@example.test",)))
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    daemon = daemon_process(settings)
    relayed_at_kills: list[int] = []
    claimed_at_kills: list[list[str]] = []
    for _ in range(KILLS):
        target = stored_count(settings) + rng.randint(1, 32)
        daemon.start()
        with log_on_failure(daemon.log, lambda: f"{stored_count(settings)} of {SPOOLED} "
                            f"stored, {len(spool_entries(settings, 'incoming'))} waiting"):
            wait_until(lambda t=target: stored_count(settings) >= t, timeout=90,
                       interval=0.01, what=f"{target} mails stored (seed {seed})")
            time.sleep(rng.uniform(0, _next_commit(settings)))  # anywhere in the next batch
        daemon.kill()
        relayed_at_kills.append(len(relay.received))
        claimed_at_kills.append(spool_entries(settings, "work"))
    assert stored_count(settings) < SPOOLED, f"the kills came too late (seed {seed})"
    assert any(claimed_at_kills), f"no kill caught a batch in flight (seed {seed})"

    daemon.start()
    wait_until(lambda: drained(settings) and stored_count(settings) >= SPOOLED, timeout=120,
               interval=0.2, what=f"the restarted daemon to drain (seed {seed})")

    stored = stored_message_ids(settings)
    assert stored == Counter({msgid: 1 for msgid, _, _ in mails}), f"seed {seed}"
    with db.session_scope(engine_for(settings)) as session:
        paths = session.exec(select(Message.raw_path)).all()
        assert session.exec(select(Quarantine)).all() == []
        stored_blobs = blobs.for_session(session, settings.data_dir)  # files or PostgreSQL's
        assert all(stored_blobs.read(p) for p in paths)
    rows = outbox_rows(settings)
    queued = Counter(str(email.message_from_bytes(r.raw, policy=email.policy.default)
                         ["In-Reply-To"]).strip("<>") for r in rows)
    assert queued == Counter(set(stored)), "one acknowledgement queued per mail"
    assert all(r.status == "sent" for r in rows)
    acks = acks_by_original(relay)
    assert set(acks) == set(stored), "a stored mail got no acknowledgement"
    # each kill can double at most the one mail between its relay's 250 and its commit
    assert sum(n - 1 for n in acks.values()) <= len(relayed_at_kills), f"seed {seed}"
    for msgid in [m for m, n in acks.items() if n > 1]:
        _resent_only_across_kills(msgid, acks, relay, relayed_at_kills, rows)
    assert spool_entries(settings, "bad") == []


def _next_commit(settings: Settings) -> float:
    """Wait for the next batch to commit; returns how long that took (a batch's time)."""
    started, count = time.monotonic(), stored_count(settings)
    wait_until(lambda: stored_count(settings) > count, timeout=60, interval=0.01,
               what="the next batch")
    return time.monotonic() - started


def _resent_only_across_kills(msgid: str, acks: Counter[str], relay: RelaySink,
                              relayed_at_kills: list[int], rows: list[Outbox]) -> None:
    """outbox: a kill between the relay's 250 and the 'sent' commit sends that one mail
    again after the restart; the same mail caught so by two kills goes three times. Never
    twice without a kill between."""
    at = [i for i, r in enumerate(relay.received)
          if str(r.message["In-Reply-To"]).strip("<>") == msgid]
    assert len(at) == acks[msgid]
    for first, again in itertools.pairwise(at):
        assert any(first < k <= again for k in relayed_at_kills), \
            f"{msgid} sent again without a kill between"
    row = next(r for r in rows if msgid in r.raw.decode(errors="replace"))
    assert row.attempts >= len(at), "a resent ack was not claimed again after the restart"


def _hold_the_database(settings: Settings) -> contextlib.AbstractContextManager[None]:
    """Take a lock that makes the pipeline block inside its transaction (after the claim)."""

    @contextlib.contextmanager
    def sqlite_lock() -> Iterator[None]:
        path = settings.database_url.split("///", 1)[1]
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")  # the write lock: the pipeline's insert waits
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()

    @contextlib.contextmanager
    def postgres_lock() -> Iterator[None]:
        import psycopg

        dsn = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as conn:
            conn.execute("LOCK TABLE message IN ACCESS EXCLUSIVE MODE")  # even reads wait
            try:
                yield
            finally:
                conn.rollback()

    return sqlite_lock() if settings.database_url.startswith("sqlite") else postgres_lock()


def test_a_daemon_killed_between_claim_and_finish_recovers_the_mail_on_restart(
    process_settings: Settings, relay: RelaySink,
    daemon_process: Callable[[Settings], DaemonProcess],
) -> None:
    settings = process_settings
    daemon = daemon_process(settings).start()
    first = make_mail(sender="anna@customer.test", message_id="<before@customer.test>")
    with smtplib.SMTP("127.0.0.1", daemon.port) as client:
        client.sendmail("anna@customer.test", ["support@example.test"], first.as_bytes())
    relay.wait_for(1)
    # the ack's "sent" must be committed before the database is held: a kill between the
    # relay's 250 and that commit is the one window where a mail may go out twice
    wait_until(lambda: drained(settings), timeout=10, what="the first ack marked sent")

    with _hold_the_database(settings):
        mail = make_mail(sender="bob@customer.test", subject="Caught in the crash",
                         message_id="<in-flight@customer.test>")
        with smtplib.SMTP("127.0.0.1", daemon.port) as client:
            client.sendmail("bob@customer.test", ["support@example.test"], mail.as_bytes())
        claimed = wait_until(lambda: spool_entries(settings, "work"), timeout=10,
                             what="the pipeline to claim the mail")
        time.sleep(0.3)  # it is now blocked inside its transaction
        assert spool_entries(settings, "work") == claimed
        daemon.kill()

    assert stored_message_ids(settings)["in-flight@customer.test"] == 0
    daemon.start()
    wait_until(lambda: drained(settings) and len(relay.received) >= 2, timeout=30,
               what="the recovered mail to be processed")

    assert "spool recovery: 1 mails resumed" in daemon.log()
    stored = stored_message_ids(settings)
    assert stored["in-flight@customer.test"] == 1
    assert stored["before@customer.test"] == 1
    acks = acks_by_original(relay)
    assert acks == Counter({"before@customer.test": 1, "in-flight@customer.test": 1})


class PoisonRouter:
    """A router (the seam we own) that raises for one mail, every time it sees it."""

    def __init__(self) -> None:
        self.poison_calls = 0
        self.decided: list[str] = []

    def decide(self, ctx: MailContext) -> Decision:
        if "poison" in ctx.mail.subject:
            self.poison_calls += 1
            raise RuntimeError("router exploded on this mail")
        self.decided.append(ctx.mail.subject)
        return Decision(queue=ctx.routed_queue or ctx.default_queue)


def test_a_mail_that_always_fails_is_retried_then_quarantined_and_the_rest_flow_past_it(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    db.upgrade(settings.database_url)
    spool = Spool(settings.data_dir / "spool")
    router = PoisonRouter()

    envelope = Envelope(route="smtp", mail_from="eve@customer.test",
                        rcpt_tos=("support@example.test",))
    spool.put(make_mail(sender="eve@customer.test", subject="the poison mail").as_bytes(),
              envelope)
    for i in (1, 2):
        spool.put(make_mail(sender=f"ok{i}@customer.test", subject=f"fine mail {i}").as_bytes(),
                  envelope)

    outcomes = run_pipeline(settings, spool, router=router)

    # the mails behind the poison one do not wait for it to use up its retries
    assert [o.kind for o in outcomes][:2] == ["retry", "stored"]
    assert sorted(o.kind for o in outcomes) == sorted(
        ["retry"] * (MAX_RECOVERIES - 1) + ["quarantined", "stored", "stored"])
    assert router.poison_calls == MAX_RECOVERIES
    assert router.decided == ["fine mail 1", "fine mail 2"]
    assert spool.pending() == [] and spool_entries(settings, "work") == []
    assert spool_entries(settings, "bad") == []
    with db.session_scope(engine_for(settings)) as session:
        held = session.exec(select(Quarantine)).all()
        subjects = sorted(t.subject for t in session.exec(select(Ticket)).all())
        contacts = sorted(c.email for c in session.exec(select(Contact)).all())
    assert subjects == ["fine mail 1", "fine mail 2"]
    assert "eve@customer.test" not in contacts, "the failed attempts were rolled back"
    assert len(held) == 1
    assert held[0].reason == (f"processing failed {MAX_RECOVERIES} times: "
                              "RuntimeError: router exploded on this mail")

    shown = run_cli(settings, "quarantine", "list", "--json")
    assert shown.returncode == 0, shown.stderr.decode()
    assert "router exploded on this mail" in shown.stdout.decode()

