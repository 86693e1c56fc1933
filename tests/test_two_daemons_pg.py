"""Two daemons, each with a data_dir of its own, sharing nothing but one PostgreSQL
database (store/blobs.py keeps originals, attachments and quarantine in it).

A burst with attachments is split between them; one is killed with SIGKILL halfway and
restarted (its spool is on its own disk: it drains what it answered 250 for), the mails
it refused meanwhile go to the other one, as an MTA falls back to a second MX. Then every
mail is stored once, acknowledged once, and every attachment downloads from the daemon
that never went down, whichever daemon stored it. And a mail quarantined by one daemon is
shown and released by another.
"""

from __future__ import annotations

import email.policy
import hashlib
import os
import queue
import signal
import smtplib
import threading
from collections import Counter
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from helpdesk.config.settings import Settings
from helpdesk.pipeline import Pipeline
from helpdesk.spool import Envelope, Spool
from helpdesk.store import blobs, db
from helpdesk.store.blob_models import Blob
from helpdesk.store.models import Attachment, Message, Quarantine
from tests.api_helpers import AGENTS
from tests.conftest import MakeSettings
from tests.helpers import (
    RelaySink,
    cli_json,
    drained,
    engine_for,
    free_port,
    invoke_cli,
    make_mail,
    run_cli,
    spool_entries,
    wait_until,
)
from tests.procs import DaemonProc

pytestmark = [pytest.mark.postgres,
              pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]

BURST = 60
KILL_AFTER = 12  # mails the daemon to be killed has answered 250 for
LOGO = bytes(range(256)) * 200  # in every third mail, through both daemons: stored once


def _mail(i: int) -> tuple[str, str, bytes, dict[str, bytes]]:
    """(Message-ID, sender, bytes, attachments by filename) of burst mail i."""
    sender, msgid = f"c{i}@customer.test", f"pg-burst-{i}@customer.test"
    msg: EmailMessage = make_mail(sender=sender, subject=f"Burst {i}", message_id=f"<{msgid}>",
                                  body=f"Mail {i} of the burst.\n")
    files: dict[str, bytes] = {}
    if i % 3 == 0:
        files = {"logo.bin": LOGO, f"report-{i}.bin": os.urandom(60_000)}
    if i % 20 == 0:  # three chunks of 1 MiB in the database
        files[f"scan-{i}.bin"] = os.urandom(2_500_000)
    for name, data in files.items():
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msgid, sender, msg.as_bytes(policy=email.policy.SMTP), files


def _settings(make_settings: MakeSettings, tmp_path: Path, relay: RelaySink,
              name: str) -> Settings:
    return make_settings({
        "helpdesk": {"data_dir": str(tmp_path / name)},
        "smtp": {"port": free_port()},
        "http": {"public": f"127.0.0.1:{free_port()}"},
        "api": {"enabled": True},
        "outgoing": {"relay_host": "127.0.0.1", "relay_port": relay.port},
    }, name=name)


class Burst:
    """SMTP clients taking mails from one queue, each mail to its daemon's port."""

    def __init__(self) -> None:
        self.work: queue.Queue[tuple[int, str, str, bytes]] = queue.Queue()
        self.accepted: Counter[int] = Counter()  # 250s by port
        self.failed: list[tuple[str, str, bytes]] = []  # (msgid, sender, raw): no 250
        self.lock = threading.Lock()

    def send(self, port: int, msgid: str, sender: str, raw: bytes) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.sendmail(sender, ["support@example.test"], raw)
        except (OSError, smtplib.SMTPException):
            with self.lock:
                self.failed.append((msgid, sender, raw))
            return
        with self.lock:
            self.accepted[port] += 1

    def run(self, connections: int) -> list[threading.Thread]:
        def client() -> None:
            while True:
                try:
                    self.send(*self.work.get_nowait())
                except queue.Empty:
                    return
        threads = [threading.Thread(target=client, daemon=True) for _ in range(connections)]
        for t in threads:
            t.start()
        return threads


def _download(base: str, token: str, a: Attachment, ticket_id: int) -> bytes:
    answer = httpx.get(f"{base}/api/v1/tickets/{ticket_id}/attachments/{a.id}", timeout=30,
                       headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-disposition"].startswith("attachment")
    assert int(answer.headers["content-length"]) == a.size
    return answer.content


def test_two_daemons_one_killed_halfway_lose_and_double_nothing(
    make_settings: MakeSettings, relay: RelaySink, tmp_path: Path,
    daemon_procs: Callable[..., DaemonProc],
) -> None:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "agents.toml").write_text(AGENTS)
    a, b = (_settings(make_settings, tmp_path, relay, name) for name in ("a", "b"))
    db.upgrade(a.database_url)  # both would migrate at start; do it once, up front
    token = invoke_cli(a, "api", "token", "create", "--agent", "lisa", "--scope", "read"
                       ).stdout.splitlines()[0]
    victim, survivor = daemon_procs(a, "a").start(), daemon_procs(b, "b").start()

    mails = [_mail(i) for i in range(BURST)]
    burst = Burst()
    for i, (msgid, sender, raw, _) in enumerate(mails):
        burst.work.put(((a, b)[i % 2].smtp.port, msgid, sender, raw))
    threads = burst.run(connections=8)
    wait_until(lambda: burst.accepted[a.smtp.port] >= KILL_AFTER, 30, interval=0.01,
               what=f"{KILL_AFTER} mails answered by the daemon to be killed")
    assert victim.proc is not None
    os.kill(victim.proc.pid, signal.SIGKILL)  # no handler runs, nothing is finished
    victim.proc.wait(10)
    killed_at = len(relay.received)
    for t in threads:
        t.join(60)
    assert burst.accepted[a.smtp.port] < BURST // 2, "the kill came after the burst"
    left_behind = spool_entries(a, "incoming") + spool_entries(a, "work")
    assert left_behind, "the kill left nothing in the spool; the restart tests nothing"

    for msgid, sender, raw in burst.failed:  # no 250 from the dead one: the other MX
        burst.send(b.smtp.port, msgid, sender, raw)
    victim.start()  # drains what it said 250 for before the kill
    engine = engine_for(a)

    def stored() -> Counter[str]:
        with db.session_scope(engine) as session:
            return Counter(session.exec(select(Message.message_id)
                                        .where(Message.direction == "in")).all())

    wait_until(lambda: len(stored()) >= BURST and drained(a) and drained(b), 60,
               interval=0.2, what="both daemons to store and acknowledge everything")
    counts = stored()
    assert set(counts) == {m[0] for m in mails} and set(counts.values()) == {1}
    acks = Counter(str(r.message["In-Reply-To"]).strip("<>") for r in relay.received
                   if any(t.endswith("@customer.test") for t in r.rcpt_tos))
    assert set(acks) == set(counts)
    # outbox.py's one window: a kill between the relay's 250 and the "sent" commit
    twice = [m for m, n in acks.items() if n > 1]
    assert len(twice) <= 1 and all(acks[m] == 2 for m in twice), acks.most_common(3)
    if twice:
        first = next(i for i, r in enumerate(relay.received)
                     if str(r.message["In-Reply-To"]).strip("<>") == twice[0])
        assert first < killed_at, "an acknowledgement sent twice, not by the kill"

    _every_attachment_from(survivor, b, engine, token, mails)
    for s in (a, b):  # nothing stored beside the spool: the database has it all
        assert not any((s.data_dir / kind).exists()
                       for kind in ("raw", "attachments", "quarantine"))
    assert all("stored " in proc.log() for proc in (victim, survivor))
    for proc in (victim, survivor):
        assert proc.terminate() == 0, proc.log()


def _every_attachment_from(survivor: DaemonProc, b: Settings, engine: Any, token: str,
                           mails: list[tuple[str, str, bytes, dict[str, bytes]]]) -> None:
    sent = {(msgid, name): data for msgid, _, _, files in mails for name, data in files.items()}
    with db.session_scope(engine) as session:
        rows = session.exec(select(Attachment, Message).where(
            Attachment.message_id == Message.id)).all()
        in_db = Counter(session.exec(select(Blob.sha256)).all())
    assert len(rows) == len(sent)
    assert in_db[hashlib.sha256(LOGO).hexdigest()] == 1  # stored once by the two daemons
    base = f"http://127.0.0.1:{b.http.public.rsplit(':', 1)[1]}"
    for att, msg in rows:
        data = _download(base, token, att, msg.ticket_id)
        assert data == sent[(msg.message_id, att.filename)], att.filename
    assert survivor.proc is not None and survivor.proc.poll() is None


def test_a_mail_quarantined_by_one_daemon_is_released_by_another(
    make_settings: MakeSettings, tmp_path: Path,
) -> None:
    a = make_settings({"helpdesk": {"data_dir": str(tmp_path / "a")}}, name="a")
    b = make_settings({"helpdesk": {"data_dir": str(tmp_path / "b")}}, name="b")
    db.upgrade(a.database_url)
    # a mail that crashed daemon a repeatedly (its spool's bad/) goes to quarantine
    spool = Spool(a.data_dir / "spool")
    raw = make_mail(sender="dora@customer.test", subject="Held on a",
                    message_id="<held@customer.test>").as_bytes()
    spool.put(raw, Envelope(route="smtp", mail_from="dora@customer.test",
                            rcpt_tos=("support@example.test",)))
    entry = spool.claim()
    assert entry is not None
    spool.shunt(entry)
    assert Pipeline(a, engine_for(a), spool).quarantine_shunted() == 1
    assert not (a.data_dir / "quarantine").exists()

    (held,) = cli_json(b, "quarantine", "list")
    shown = run_cli(b, "quarantine", "show", str(held["id"]))
    assert shown.returncode == 0 and raw in shown.stdout, shown.stderr.decode()
    released = run_cli(b, "quarantine", "release", str(held["id"]))
    assert released.returncode == 0 and b"stored" in released.stdout, released.stderr.decode()

    with db.session_scope(engine_for(b)) as session:
        (message,) = session.exec(select(Message).where(Message.direction == "in")).all()
        row = session.get(Quarantine, held["id"])
        assert row is not None and row.status == "released"
        # the same bytes as the quarantined copy: one blob, two references
        assert message.raw_path == row.raw_path == "db:" + hashlib.sha256(raw).hexdigest()
        assert blobs.for_session(session, b.data_dir).read(message.raw_path) == raw
        assert len(session.exec(select(Blob)).all()) == 1
    assert message.message_id == "held@customer.test"
    assert not any((s.data_dir / k).exists() for s in (a, b) for k in ("raw", "quarantine"))
