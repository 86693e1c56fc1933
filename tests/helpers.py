"""Test helpers: real servers on loopback, mail builders, waiting, the CLI as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import json
import os
import random
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from helpdesk.config.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


_PORTS = random.Random()  # its own: tests that seed the module's must not pick alike


def free_port() -> int:
    """A port nothing listens on, for a listener a test starts a moment later. Taken
    below the kernel's ephemeral range: a port from inside it (what binding port 0
    gives) can be handed to another test's outgoing connection before the listener
    binds it, as a parallel run once saw."""
    high = _ephemeral_low() - 1
    for _ in range(200):
        port = _PORTS.randint(max(1024, high - 12000), high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def log_on_failure(log: Callable[[], str], state: Callable[[], str] = lambda: ""
                   ) -> Iterator[None]:
    """A wait that times out (an AssertionError) says what the daemon logged meanwhile,
    and `state`: what the test saw when it gave up."""
    try:
        yield
    except AssertionError as err:
        seen = state()
        raise AssertionError(f"{err}{chr(10) + seen if seen else ''}\n--- daemon log ---\n"
                             f"{log()[-6000:]}") from None


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
               what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def make_mail(*, sender: str = "Carol Customer <carol@customer.test>",
              to: str = "support@example.test", subject: str = "Printer on fire",
              body: str = "Help, the printer is on fire.", cc: str = "",
              message_id: str | None = None, headers: dict[str, str] | None = None,
              in_reply_to: str = "", references: str = "") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain="customer.test")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    return msg


def send(port: int, msg: EmailMessage | bytes, *, sender: str = "carol@customer.test",
         rcpts: list[str] | None = None) -> None:
    """Deliver over real SMTP to our listener."""
    rcpts = rcpts or ["support@example.test"]
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        raw = msg if isinstance(msg, bytes) else msg.as_bytes(policy=email.policy.SMTP)
        client.sendmail(sender, rcpts, raw)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        import email
        import email.policy

        return email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class SinkHandler:
    received: list[Received] = field(default_factory=list)
    # replies to give instead of 250, consumed one per DATA
    refusals: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            if self.refusals:
                return self.refusals.pop(0)
            raw = envelope.original_content or b""
            self.received.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos), raw))
        return "250 2.0.0 OK"


class RelaySink:
    """A real SMTP server standing in for the outgoing relay; can refuse on demand."""

    def __init__(self) -> None:
        self.handler = SinkHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     enable_SMTPUTF8=True)

    def start(self) -> RelaySink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def refuse_next(self, *replies: str) -> None:
        with self.handler.lock:
            self.handler.refusals.extend(replies)

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        wait_until(lambda: len(self.received) >= count, timeout, what=f"{count} relayed mails")
        return self.received


class DaemonThread:
    """The real daemon (SMTP listener, pipeline, outbox) in a thread with its own loop."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        from helpdesk.daemon import Daemon

        self.daemon = Daemon(settings, **kwargs)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.daemon.serve(ready=self.ready.set))
        except BaseException as err:  # surfaced by start()/stop()
            self.error = err
            self.ready.set()
        finally:
            self.loop.close()

    def pipeline_waits_for_a_poke(self) -> None:
        """From now on the idle pipeline looks at the spool only when poked (a test of
        who pokes it): a long idle wait, entered after one empty look."""
        worker = self.daemon.pipeline_worker
        worker.idle = 600.0
        worker.poke()
        time.sleep(0.5)  # the poked look finds nothing; the next wait is the long one

    def start(self) -> DaemonThread:
        self.thread.start()
        self.ready.wait(30)
        if self.error:
            raise self.error
        return self

    @property
    def port(self) -> int:
        return self.daemon.smtp_port

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.daemon.request_stop)
            self.thread.join(30)
        if self.error:
            raise self.error


def run_cli(settings: Settings, *args: str, stdin: bytes | None = None,
            env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "helpdesk", "--config", str(settings.source), *args],
        input=stdin, capture_output=True, env=full_env, timeout=timeout, cwd=REPO,
    )


def invoke_cli(settings: Settings, *args: str, stdin: str | None = None) -> Any:
    """The CLI in this process (click's CliRunner): a second cheaper than run_cli, for
    commands that read or act on tickets. Not for run, ingest or jobs run-due, which set
    up the process's logging."""
    from click.testing import CliRunner

    from helpdesk.__main__ import _register, cli

    _register()
    return CliRunner().invoke(cli, ["--config", str(settings.source), *args], input=stdin)


def cli_json(settings: Settings, *args: str) -> Any:
    result = run_cli(settings, *args, "--json")
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def status_rows(out: str) -> dict[str, tuple[str, str]]:
    """`helpdesk status` as {part: (state, detail)}, checking its columns line up."""
    table = out.split("\n\n")[0].splitlines()
    header = table[0]
    assert header.split() == ["PART", "STATE", "DETAIL"], out
    state_at, detail_at = header.index("STATE"), header.index("DETAIL")
    rows = {}
    for line in table[1:]:
        assert line[state_at - 2:state_at] == "  " and line[state_at] != " ", out
        assert len(line) <= detail_at or line[detail_at - 2:detail_at] == "  ", out
        rows[line[:state_at].strip()] = (line[state_at:detail_at].strip(),
                                         line[detail_at:].strip())
    return rows


_engines: dict[str, Any] = {}


def engine_for(settings: Settings) -> Any:
    from helpdesk.store import db

    url = settings.database_url
    if url not in _engines:
        _engines[url] = db.make_engine(url)
    return _engines[url]


def all_tickets(settings: Settings) -> list[dict[str, Any]]:
    """Every ticket with messages and events, as `tickets show --json` has them."""
    from helpdesk.report.present import ticket_detail
    from helpdesk.store import db, queries

    db.upgrade(settings.database_url)
    with db.snapshot_scope(engine_for(settings)) as session:
        prefix = settings.helpdesk.ticket_prefix
        return [ticket_detail(session, t, prefix) for t in queries.tickets(session)]


def ticket(settings: Settings, number: int = 1) -> dict[str, Any]:
    """Ticket HD-<number> as `tickets show --json` has it; it must exist."""
    found = [t for t in all_tickets(settings) if t["id"] == f"HD-{number}"]
    assert found, f"no ticket HD-{number}"
    return found[0]


def wait_ticket(settings: Settings, number: int = 1,
                predicate: Callable[[dict[str, Any]], Any] = bool,
                what: str = "", timeout: float = 15.0) -> dict[str, Any]:
    """Wait until ticket HD-<number> exists and `predicate(ticket)` holds; return it."""

    def check() -> dict[str, Any] | None:
        found = [t for t in all_tickets(settings) if t["id"] == f"HD-{number}"]
        return found[0] if found and predicate(found[0]) else None

    return wait_until(check, timeout, what=what or f"ticket HD-{number}")


def ticket_row(settings: Settings, ticket_id: int) -> Any:
    """The ticket's database row (datetimes, not the JSON's strings)."""
    from helpdesk.store import db
    from helpdesk.store.models import Ticket

    with db.session_scope(engine_for(settings)) as session:
        return session.get(Ticket, ticket_id)


def all_messages(settings: Settings) -> list[dict[str, Any]]:
    return [dict(m, ticket=t["id"]) for t in all_tickets(settings) for m in t["messages"]]


def outbox_rows(settings: Settings) -> list[Any]:
    from sqlmodel import select

    from helpdesk.store import db
    from helpdesk.store.models import Outbox

    with db.session_scope(engine_for(settings)) as session:
        return list(session.exec(select(Outbox).order_by(Outbox.id)).all())


def spool_entries(settings: Settings, sub: str) -> list[str]:
    """Names in the daemon's spool directory `sub` (incoming, work, bad, ...)."""
    path = settings.data_dir / "spool" / sub
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def drained(settings: Settings) -> bool:
    """The daemon is done with everything it was given: no mail waiting in or claimed
    from the spool, and every outgoing mail sent or given up (none queued or sending).
    The point after which an absence ("no ack was sent") means something."""
    if any(spool_entries(settings, sub) for sub in ("incoming", "work", "bundles")):
        return False
    return all(r.status in ("sent", "dead") for r in outbox_rows(settings))


def wait_drained(settings: Settings, timeout: float = 15.0) -> None:
    wait_until(lambda: drained(settings), timeout, what="the spool and the outbox to drain")


def wait_outbox_passes(daemon: DaemonThread, count: int = 2, timeout: float = 15.0) -> None:
    """Wait until every outbox row's next attempt time has come (a retry's backoff, a
    claim's lease) and the daemon's outbox worker has then finished `count` passes:
    a row that could go out again has had its turn, so what did not go out won't."""
    from helpdesk import clock

    due = max((r.next_attempt_at for r in outbox_rows(daemon.daemon.settings)), default=None)
    wait_until(lambda: due is None or clock.now() > due, timeout, what="every outbox row due")
    worker = daemon.daemon.outbox
    deliver_due = worker.deliver_due
    done: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return deliver_due(*args, **kwargs)
        finally:
            done.append(1)

    worker.deliver_due = counted  # type: ignore[method-assign]
    try:
        for _ in range(count):
            seen = len(done)
            daemon.daemon.outbox_worker.poke()
            wait_until(lambda: len(done) > seen, timeout,  # noqa: B023 (called at once)
                       what="a pass of the outbox worker")
    finally:
        del worker.deliver_due


def spool_backlog(settings: Settings, n: int) -> Any:
    """n new customers' mails waiting in the spool, as if taken over SMTP (a backlog)."""
    from helpdesk.spool import Envelope, Spool

    spool = Spool(settings.data_dir / "spool")
    for i in range(n):
        mail = make_mail(sender=f"Customer {i} <c{i}@customer.test>", subject=f"issue {i}")
        spool.put(bytes(mail), Envelope(route="smtp", mail_from=f"c{i}@customer.test",
                                        rcpt_tos=("support@example.test",)))
    return spool


def run_pipeline(settings: Settings, spool: Any = None, **kwargs: Any) -> list[Any]:
    """The pipeline in this process, until the spool is empty: its outcomes."""
    from helpdesk.pipeline import Pipeline
    from helpdesk.spool import Spool
    from helpdesk.store import db

    db.upgrade(settings.database_url)
    spool = spool or Spool(settings.data_dir / "spool")
    return list(Pipeline(settings, engine_for(settings), spool, **kwargs).drain())


def dispose_engines() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
