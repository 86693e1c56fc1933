"""Deliver outbox rows: to the SMTP relay, or into a local maildir when none is set
(outgoing/transports.py).

A pass claims the due rows a batch at a time (up to BATCH of them, BATCH_BYTES of mail):
one transaction sets them "sending" with a lease. On PostgreSQL the claim uses
SELECT ... FOR UPDATE SKIP LOCKED, so several daemons never take the same row; a row
leased by a daemon that died is due again when its lease runs out. The batch then goes
to the relay over one connection, and each mail is recorded "sent" the moment the relay
has said 250, before the next mail is sent: the only window for a duplicate is a crash
between that 250 and that record, which stays milliseconds long and one mail wide
(recording a whole batch at once would widen it to the batch), and the resent mail
carries the same Message-ID so the recipient's client can fold it. On PostgreSQL the
record is a commit of its own; on SQLite, whose one write lock the pipeline holds
through each batch, it is a line fsynced in outgoing/sent_journal.py, written into the
database with the next claim (before that claim picks any row) or at the end of the
pass; its writes take turns with the pipeline's batches (store/turns.py).
Maildir delivery uses a file name derived from the row, so a redelivery after a crash
finds the file and does not write twice.

A mail the relay refuses for good (5xx) affects only its row, which is dead; when the
relay is unreachable or defers (4xx), that row is retried with backoff, the pass stops
and the batch's untried rows are given back as they were (due at once, attempts as
before). Rows are sent only within SEND_WINDOW of their claim; the rest are
given back and claimed again with a fresh lease, so a slow relay never sends a row
whose lease is about to run out.

Statements are SQLAlchemy Core on one connection per pass: the ORM's objects, sessions
and unit of work cost more CPU than the SMTP dialogue, in the thread that shares the
GIL with the pipeline.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, or_, select, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.errors import PermanentError, TemporaryError
from helpdesk.outgoing.sent_journal import SentJournal
from helpdesk.outgoing.transports import Claimed, Transport, transport_for
from helpdesk.store.db import is_unavailable
from helpdesk.store.models import Outbox

log = logging.getLogger("helpdesk.outgoing.outbox")

BATCH = 32  # rows claimed in one transaction
BATCH_BYTES = 8 * 1024 * 1024  # of mail held in memory at once (beyond the first row)
SEND_WINDOW = 10.0  # seconds after a claim in which its rows may be sent (at most lease/2)

_T = Outbox.__table__  # type: ignore[attr-defined]
# "sending" is due only once its lease has run out; two comparisons, not IN (...): an
# IN list is expanded into the SQL text again on every execution
_DUE = or_(_T.c.status == "queued", _T.c.status == "sending")

# built once: SQLAlchemy then reuses their compiled form
_PICK = (select(_T.c.id, _T.c.status, _T.c.attempts, _T.c.next_attempt_at,
                func.length(_T.c.raw))
         .where(_DUE, _T.c.next_attempt_at <= bindparam("now"))
         .order_by(_T.c.next_attempt_at, _T.c.id)
         .limit(bindparam("want"))
         .with_for_update(skip_locked=True))
# the condition again: without row locks (SQLite) another process may have leased a row
# between the read and this write; the rowcount tells
_LEASE = (update(_T)
          .where(_T.c.id.in_(bindparam("ids", expanding=True)), _DUE,
                 _T.c.next_attempt_at <= bindparam("now"))
          .values(status="sending", attempts=_T.c.attempts + 1,
                  next_attempt_at=bindparam("until", type_=_T.c.next_attempt_at.type)))
_READ = select(_T.c.id, _T.c.kind, _T.c.ticket_id, _T.c.mail_from, _T.c.rcpt_tos,
               _T.c.message_id, _T.c.msgid_key, _T.c.raw, _T.c.created_at) \
    .where(_T.c.id.in_(bindparam("ids", expanding=True)))
_SENT = (update(_T).where(_T.c.id == bindparam("row_id"))
         .values(status="sent", last_error="",
                 sent_at=bindparam("at", type_=_T.c.sent_at.type)))
# a journal's line: only the row it was written for, and only if no one recorded it since
_JOURNALED = (update(_T)
              .where(_T.c.id == bindparam("row_id"), _T.c.msgid_key == bindparam("key"), _DUE)
              .values(status="sent", last_error="",
                      sent_at=bindparam("at", type_=_T.c.sent_at.type)))
_RETRY = (update(_T).where(_T.c.id == bindparam("row_id"))
          .values(status="queued", last_error=bindparam("error"),
                  next_attempt_at=bindparam("due", type_=_T.c.next_attempt_at.type)))
_DEAD = (update(_T).where(_T.c.id == bindparam("row_id"))
         .values(status="dead", last_error=bindparam("error")))
# only while it is still our lease (status and attempts as we left them)
_GIVE_BACK = (update(_T)
              .where(_T.c.id == bindparam("row_id"), _T.c.status == "sending",
                     _T.c.attempts == bindparam("leased_attempts"))
              .values(status=bindparam("was_status"), attempts=bindparam("was_attempts"),
                      next_attempt_at=bindparam("was_due", type_=_T.c.next_attempt_at.type)))


@dataclass(frozen=True)
class Result:
    sent: int = 0
    failed: int = 0
    dead: int = 0


@dataclass
class _Tally:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    stop: bool = False  # the relay is down or deferring: the rest waits its turn
    cut: bool = False  # the send window ended a batch: its rest is due again now


def _backoff(settings: Settings, attempts: int) -> timedelta:
    cfg = settings.outgoing
    return timedelta(seconds=min(cfg.backoff_max, cfg.backoff_base * 2 ** max(0, attempts - 1)))


@contextlib.contextmanager
def _database() -> Iterator[None]:
    """Outages become TemporaryError, as in store.db.session_scope."""
    try:
        yield
    except DBAPIError as err:
        if is_unavailable(err):
            raise TemporaryError(f"database unavailable: {err.orig or err}") from err
        raise


class OutboxWorker:
    def __init__(self, settings: Settings, engine: Engine,
                 transport_factory: Callable[[], Transport] | None = None) -> None:
        self.settings = settings
        self.engine = engine
        # opened at the first pass: a daemon that refuses to start leaves it alone
        self.journal: SentJournal | None = None
        self._journal_wanted = engine.dialect.name == "sqlite"
        self.transport_factory = transport_factory or (lambda: transport_for(settings))
        self._relay_down = False
        self._give_up = timedelta(hours=settings.outgoing.give_up_after_hours)
        self._lease = timedelta(seconds=settings.outgoing.lease)
        self._window = min(SEND_WINDOW, settings.outgoing.lease / 2)
        self.dead_rows: list[int] = []  # the daemon tells the admins about these
        self._unrecorded: set[int] = set()  # sent, but the "sent" commit failed

    def deliver_due(self, limit: int = 100) -> Result:
        """Send what is due now (up to `limit` rows); returns counts. Stops early when the
        relay is down."""
        if self._journal_wanted:
            self._journal_wanted = False
            self.journal = SentJournal.open(self.settings.data_dir / "outbox" / "sent.journal")
        tally = _Tally()
        transport = self.transport_factory()
        try:
            with _database(), self.engine.connect() as conn:
                self._record_unrecorded(conn)
                claimed = 0
                while claimed < limit and not tally.stop:
                    want = min(BATCH, limit - claimed)
                    deadline = time.monotonic() + self._window  # before the lease is set
                    batch, more = self._claim(conn, want)
                    claimed += len(batch)
                    self._deliver(conn, transport, batch, deadline, tally)
                    if not (more or tally.cut):
                        break
                    tally.cut = False
                self._flush_journal(conn)
        finally:
            transport.close()
        return Result(tally.sent, tally.failed, tally.dead)

    def _claim(self, conn: Connection, want: int) -> tuple[list[Claimed], bool]:
        """Up to `want` due rows, leased to us in one commit, oldest due first; and
        whether more may be due."""
        now = clock.now()
        journaled = self._write_journaled(conn)  # before the pick: it must not pick them
        picked = conn.execute(_PICK, {"now": now, "want": want}).all()
        if not picked:
            self._commit(conn, journaled)
            return [], False
        take, size = [], 0
        for row in picked:  # the first always, however large; then up to BATCH_BYTES
            size += row[4] or 0
            if take and size > BATCH_BYTES:
                break
            take.append(row)
        ids = [row.id for row in take]
        until = now + self._lease
        if conn.execute(_LEASE, {"ids": ids, "now": now, "until": until}).rowcount != len(ids):
            conn.rollback()  # taken by another process meanwhile: none of them now
            return [], False
        mail = {row.id: row for row in conn.execute(_READ, {"ids": ids})}
        self._commit(conn, journaled)
        return [_claimed(mail[row.id], row) for row in take], len(picked) == want

    def _deliver(self, conn: Connection, transport: Transport, batch: list[Claimed],
                 deadline: float, tally: _Tally) -> None:
        """Send a claimed batch over one connection, each mail recorded as it goes; what
        is left untried (the relay is down, the send window is over, an error) is given
        back as it was."""
        pending = deque(batch)
        try:
            while pending and not tally.stop and time.monotonic() < deadline:
                row = pending.popleft()
                if row.id in self._unrecorded:  # delivered; only the record was missing
                    self._record_sent(conn, row)
                    self._unrecorded.discard(row.id)
                    continue
                self._send(conn, transport, row, tally)
        finally:
            if pending:
                tally.cut = not tally.stop
                self._give_back(conn, list(pending))

    def _send(self, conn: Connection, transport: Transport, row: Claimed,
              tally: _Tally) -> None:
        try:
            transport.send(row)
        except PermanentError as err:
            self._record_failed(conn, row, str(err), dead=True)
            log.error("outbox %s to %s is dead: %s", row.id, row.rcpt_tos, err)
            tally.dead += 1
            return
        except TemporaryError as err:
            self._record_failed(conn, row, str(err))
            self._note_down(err)
            tally.failed += 1
            tally.stop = True  # the rest would fail the same way; they wait their turn
            return
        self._note_up()
        tally.sent += 1
        self._record_sent(conn, row)
        self._log_sent(row)

    def _record_sent(self, conn: Connection, row: Claimed) -> None:
        """Make the delivery durable before anything else goes out: in the journal
        (SQLite), else in a commit. If that fails right now, remember it in memory so
        this process never sends the mail again once its lease runs out; only a crash of
        the process in this instant can repeat it."""
        if self.journal is not None:
            try:
                self.journal.add(row.id, row.msgid_key, clock.now())
                return
            except OSError as err:
                log.warning("outbox journal %s not written (%s): recording %s in the "
                            "database instead", self.journal.path, err, row.id)
        try:
            conn.execute(_SENT, {"row_id": row.id, "at": clock.now()})
            conn.commit()
        except BaseException:
            self._unrecorded.add(row.id)
            raise

    def _write_journaled(self, conn: Connection) -> bool:
        """The journal's deliveries as updates in this transaction; True if any."""
        if self.journal is None or not self.journal.pending:
            return False
        conn.execute(_JOURNALED, [{"row_id": d.row_id, "key": d.msgid_key, "at": d.at}
                                  for d in self.journal.pending])
        return True

    def _commit(self, conn: Connection, journaled: bool) -> None:
        conn.commit()
        if journaled:
            assert self.journal is not None
            self.journal.recorded()

    def _flush_journal(self, conn: Connection) -> None:
        """At the end of a pass: what was sent is "sent" in the database too (the web
        desk and `helpdesk status` read it there)."""
        if self.journal is not None and self.journal.pending:
            self._commit(conn, self._write_journaled(conn))

    def _record_failed(self, conn: Connection, row: Claimed, error: str,
                       dead: bool = False) -> None:
        now = clock.now()
        if dead or now - row.created_at > self._give_up:
            conn.execute(_DEAD, {"row_id": row.id, "error": error})
            self.dead_rows.append(row.id)
        else:
            conn.execute(_RETRY, {"row_id": row.id, "error": error,
                                  "due": now + _backoff(self.settings, row.attempts)})
        conn.commit()

    def _give_back(self, conn: Connection, rows: list[Claimed]) -> None:
        """Untried rows return to how they were, due again at once; best effort: if the
        database is failing, their lease runs out instead."""
        try:
            conn.rollback()  # whatever an error left half done
            conn.execute(_GIVE_BACK, [
                {"row_id": r.id, "leased_attempts": r.attempts, "was_status": r.was_status,
                 "was_attempts": r.was_attempts, "was_due": r.was_due} for r in rows])
            conn.commit()
        except SQLAlchemyError as err:
            log.debug("outbox: could not give back %d rows (their lease will run out): %s",
                      len(rows), err)

    def _record_unrecorded(self, conn: Connection) -> None:
        for row_id in sorted(self._unrecorded):
            conn.execute(_SENT, {"row_id": row_id, "at": clock.now()})
            conn.commit()
            self._unrecorded.discard(row_id)

    def _log_sent(self, row: Claimed) -> None:
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


def _claimed(mail: Any, lease: Any) -> Claimed:
    return Claimed(id=mail.id, kind=mail.kind, ticket_id=mail.ticket_id,
                   mail_from=mail.mail_from, rcpt_tos=list(mail.rcpt_tos),
                   message_id=mail.message_id, msgid_key=mail.msgid_key, raw=bytes(mail.raw),
                   created_at=mail.created_at, attempts=lease.attempts + 1,
                   was_status=lease.status, was_attempts=lease.attempts,
                   was_due=lease.next_attempt_at)
