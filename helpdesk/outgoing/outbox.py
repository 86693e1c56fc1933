"""Deliver outbox rows: to the SMTP relay, or into a local maildir when none is set.

A row is claimed (status "sending" with a lease) in a short transaction, sent,
and marked "sent" in the next one, which also claims the row after it: one
commit per mail, and every send still recorded the moment it is done. On
PostgreSQL the claim uses SELECT ... FOR UPDATE SKIP LOCKED, so several daemons
never take the same row. The only window for a duplicate is a crash after the
relay's 250 and before the "sent" commit: that commit comes immediately after
each send, keeping the window to milliseconds (and to one mail), and the resent
mail carries the same Message-ID so the recipient's client can fold it. Maildir
delivery uses a file name derived from the row, so a redelivery after a crash
finds the file and does not write twice.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.durable import write_atomic
from helpdesk.errors import PermanentError, TemporaryError
from helpdesk.store.db import session_scope
from helpdesk.store.models import Outbox

log = logging.getLogger("helpdesk.outgoing.outbox")


@dataclass(frozen=True)
class Result:
    sent: int = 0
    failed: int = 0
    dead: int = 0


class Transport:
    """Sends one mail; raises TemporaryError (retry) or PermanentError (dead)."""

    def send(self, row: Outbox) -> None:
        raise NotImplementedError

    def close(self) -> None:
        return None


class MaildirTransport(Transport):
    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def send(self, row: Outbox) -> None:
        name = f"outbox-{row.id}.{row.msgid_key[:16]}.{socket.gethostname()}"
        target = self.root / "new" / name
        if target.exists() or (self.root / "cur" / name).exists():
            return  # delivered before a crash kept us from recording it
        envelope = f"X-Helpdesk-Envelope-To: {', '.join(row.rcpt_tos)}\n".encode()
        # CRLF is for the wire; a maildir file uses the local convention (LF), as
        # Postfix's and Dovecot's do: mail clients reading it (s-nail) build broken
        # replies from CRLF files. Durable before the outbox records the row as sent.
        write_atomic(target, envelope + _local_line_endings(row.raw),
                     tmp=self.root / "tmp" / name)


def _local_line_endings(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


class RelayTransport(Transport):
    """smtplib over one connection reused for a batch."""

    def __init__(self, settings: Settings) -> None:
        self.cfg = settings.outgoing
        self.password = settings.relay_password
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._conn is not None:
            return self._conn
        cfg = self.cfg
        try:
            if cfg.ssl:
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    cfg.relay_host, cfg.relay_port, timeout=cfg.timeout,
                    context=ssl.create_default_context())
            else:
                conn = smtplib.SMTP(cfg.relay_host, cfg.relay_port, timeout=cfg.timeout)
                if cfg.starttls:
                    conn.starttls(context=ssl.create_default_context())
            if cfg.username:
                conn.login(cfg.username, self.password)
        except smtplib.SMTPAuthenticationError as err:
            raise TemporaryError(
                f"relay login refused: {err.smtp_code} {err.smtp_error!r}") from err
        except (OSError, smtplib.SMTPException) as err:
            raise TemporaryError(f"relay {cfg.relay_host}:{cfg.relay_port} unreachable: {err}") \
                from err
        self._conn = conn
        return conn

    def send(self, row: Outbox) -> None:
        conn = self._connect()
        try:
            refused = conn.sendmail(row.mail_from, row.rcpt_tos, row.raw,
                                    mail_options=_mail_options(row))
        except smtplib.SMTPRecipientsRefused as err:
            codes = {code for code, _ in err.recipients.values()}
            self.close()
            if all(400 <= c < 500 for c in codes):
                raise TemporaryError(f"recipients deferred: {err.recipients}") from err
            raise PermanentError(f"recipients refused: {err.recipients}") from err
        except smtplib.SMTPResponseException as err:
            self.close()
            text = f"{err.smtp_code} {err.smtp_error.decode(errors='replace')}"
            if 400 <= err.smtp_code < 500:
                raise TemporaryError(f"relay said {text}") from err
            raise PermanentError(f"relay said {text}") from err
        except (OSError, smtplib.SMTPException) as err:
            self.close()
            raise TemporaryError(f"relay connection failed: {err}") from err
        if refused:
            log.warning("outbox %s: some recipients refused: %s", row.id, refused)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._conn.quit()
            self._conn = None


def _mail_options(row: Outbox) -> list[str]:
    options = []
    if not row.raw.isascii():
        options.append("BODY=8BITMIME")
    if not all(a.isascii() for a in (row.mail_from, *row.rcpt_tos)):
        options.append("SMTPUTF8")
    return options


def transport_for(settings: Settings) -> Transport:
    if settings.outgoing.relay_host:
        return RelayTransport(settings)
    return MaildirTransport(settings.data_dir / "maildir")


def _backoff(settings: Settings, attempts: int) -> timedelta:
    cfg = settings.outgoing
    return timedelta(seconds=min(cfg.backoff_max, cfg.backoff_base * 2 ** max(0, attempts - 1)))


class OutboxWorker:
    def __init__(self, settings: Settings, engine: Engine,
                 transport_factory: Callable[[], Transport] | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.transport_factory = transport_factory or (lambda: transport_for(settings))
        self._relay_down = False
        self._give_up = timedelta(hours=settings.outgoing.give_up_after_hours)
        self.dead_rows: list[int] = []  # the daemon tells the admins about these
        self._unrecorded: set[int] = set()  # sent, but the "sent" commit failed

    def _claim(self, sent: int | None = None) -> Outbox | None:
        """The next due row, leased to us; `sent`: record that row as sent first, in the
        same transaction (one commit per mail instead of two)."""
        with session_scope(self.engine) as session:
            if sent is not None:
                self._record(session, sent)
            now = clock.now()
            stmt = (
                select(Outbox)
                .where(col(Outbox.status).in_(("queued", "sending")), Outbox.next_attempt_at <= now)
                .order_by(Outbox.next_attempt_at, Outbox.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            row = session.exec(stmt).first()
            if row is None:
                return None
            row.status = "sending"
            row.next_attempt_at = now + timedelta(seconds=self.settings.outgoing.lease)
            row.attempts += 1
            session.add(row)
            return row

    def _finish(self, row_id: int, *, error: str = "", dead: bool = False) -> None:
        with session_scope(self.engine) as session:
            self._record(session, row_id, error=error, dead=dead)

    def _record(self, session: Session, row_id: int, *, error: str = "",
                dead: bool = False) -> None:
        row = session.get(Outbox, row_id)
        if row is None:
            return
        if not error:
            row.status, row.sent_at, row.last_error = "sent", clock.now(), ""
        elif dead or clock.now() - row.created_at > self._give_up:
            row.status, row.last_error = "dead", error
            self.dead_rows.append(row_id)
        else:
            row.status, row.last_error = "queued", error
            row.next_attempt_at = clock.now() + _backoff(self.settings, row.attempts)
        session.add(row)

    def deliver_due(self, limit: int = 100) -> Result:
        """Send what is due now; returns counts. Stops early when the relay is down."""
        sent = failed = dead = 0
        self._record_unrecorded()
        transport = self.transport_factory()
        try:
            row = self._claim()
            for n in range(limit):
                if row is None:
                    break
                if row.id in self._unrecorded:  # delivered; only the record was missing
                    self._unrecorded.discard(row.id)  # type: ignore[arg-type]
                    row = self._sent_and_claim(row, more=n + 1 < limit, log_it=False)
                    continue
                try:
                    transport.send(row)
                except PermanentError as err:
                    self._finish(row.id, error=str(err), dead=True)  # type: ignore[arg-type]
                    log.error("outbox %s to %s is dead: %s", row.id, row.rcpt_tos, err)
                    dead += 1
                    row = self._claim() if n + 1 < limit else None
                    continue
                except TemporaryError as err:
                    self._finish(row.id, error=str(err))  # type: ignore[arg-type]
                    self._note_down(err)
                    failed += 1
                    break  # the rest would fail the same way; they wait their turn
                self._note_up()
                sent += 1
                row = self._sent_and_claim(row, more=n + 1 < limit)
        finally:
            transport.close()
        return Result(sent, failed, dead)

    def _sent_and_claim(self, row: Outbox, more: bool, log_it: bool = True) -> Outbox | None:
        """Record a delivery, and claim the next row in the same commit (when `more`).
        If the database fails right now, remember the delivery in memory so this
        process never sends the mail again once its lease runs out; only a crash of the
        process in this instant can still repeat it."""
        try:
            if more:
                following = self._claim(sent=row.id)
            else:
                self._finish(row.id)  # type: ignore[arg-type]
                following = None
        except TemporaryError:
            self._unrecorded.add(row.id)  # type: ignore[arg-type]
            raise
        if log_it:
            self._log_sent(row)
        return following

    def _record_unrecorded(self) -> None:
        for row_id in sorted(self._unrecorded):
            self._finish(row_id)
            self._unrecorded.discard(row_id)

    def _log_sent(self, row: Outbox) -> None:
        ticket = f"{self.settings.helpdesk.ticket_prefix}-{row.ticket_id}" if row.ticket_id else ""
        message_id = row.message_id.strip("<>")
        log.info("sent %s %s for %s to %s message_id=<%s>", row.kind, row.id, ticket or "-",
                 ", ".join(row.rcpt_tos), message_id,
                 extra={"ticket": ticket, "message_id": message_id})

    def _note_down(self, err: Exception) -> None:
        if not self._relay_down:
            log.warning("outgoing mail delayed: %s (will retry with backoff)", err)
        self._relay_down = True

    def _note_up(self) -> None:
        if self._relay_down:
            log.info("outgoing mail flowing again")
        self._relay_down = False
