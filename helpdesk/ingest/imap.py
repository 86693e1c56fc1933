"""One thread per `[[imap]]` mailbox: UID FETCH -> spool.put -> MOVE / flag / delete.

A backlog (more than one batch) is pipelined: while this thread fetches, a store
thread spools the batches already fetched and a mover with a second connection
moves the ones already spooled (imap_backlog.py).

Nothing is moved, flagged or deleted on the server before `Spool.put` has
returned (the mail is on disk). Unhandled mail is found by UID above the last
handled one, never by \\Seen. A crash between put and MOVE re-spools the mail
on restart and the pipeline drops it as a duplicate (Message-ID + hash); so
does a UIDVALIDITY change, which makes the poller rescan the whole folder.

Faults (server down, TLS, refused login, vanished folder) are logged once per
change, then retried with capped exponential backoff; a refused login waits
`backoff_max` at once. A mail whose fetch keeps failing, or that cannot be
spooled while others can, is moved to `quarantine_folder` after MAX_FAILURES.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Container
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from helpdesk import clock
from helpdesk.config.imap import ImapSection
from helpdesk.errors import TemporaryError
from helpdesk.ingest import imap_ops as ops
from helpdesk.ingest.imap_backlog import Backlog, Stored
from helpdesk.ingest.imap_connect import (
    ImapFault,
    LoginFailed,
    TokenSource,
    connect,
    describe,
    logout,
)
from helpdesk.ingest.imap_state import (
    MailboxState,
    PollerStatus,
    StateFile,
    StatusBox,
    identity,
    state_path,
)
from helpdesk.spool import Envelope, Spool

log = logging.getLogger("helpdesk.ingest.imap")

MAX_FAILURES = 5
BACKOFF_BASE = 1.0
PUT_WORKERS = 16  # parallel fsyncs share journal commits
# backlog batches fetched but not yet moved (the mover groups imap_backlog.GROUP of them
# per MOVE), as long as their mails together stay under MAX_HELD bytes (big attachments
# mean fewer at once); fewer than 3 groups' worth and the fetch waits for the mover
MAX_IN_FLIGHT = 12
MAX_HELD = 2 * ops.BATCH_BYTES
# the last-UID file is written at most this often during a backlog, and when the drain
# ends: losing a second of it to a crash only means mails fetched again and dropped
# downstream as duplicates (or already moved away)
SAVE_EVERY = 1.0
StallCallback = Callable[[str, datetime, str], None]


def default_state_dir(data_dir: Path) -> Path:
    """Where the daemon keeps the pollers' UIDVALIDITY / last-UID files."""
    return data_dir / "imap"


def state_file(entry: ImapSection, state_dir: Path) -> StateFile:
    who = identity(entry.username, entry.host, entry.port, entry.folder)
    return StateFile(state_path(state_dir, entry.name), who)


class SpoolUnavailable(ImapFault):
    """No mail could be spooled: a local outage, not the mail's fault."""


@dataclass
class _Failure:
    count: int
    reason: str
    # put failures: spool successes before the first one; quarantine only once the
    # spool has taken other mails since. None for fetch failures (always the mail's fault).
    puts_ok_before: int | None


class ImapPoller:
    """Polls one mailbox in its own thread; `status()` may be called from any thread."""

    def __init__(self, entry: ImapSection, spool: Spool,
                 on_spooled: Callable[[], None] | None, state_dir: Path,
                 *, on_stall: StallCallback | None = None) -> None:
        self.entry = entry
        self.name = entry.name
        self.spool = spool
        self.on_spooled = on_spooled
        self.on_stall = on_stall
        self._statefile = state_file(entry, state_dir)
        self._state = self._statefile.load()
        self._tokens = TokenSource(entry.oauth2_command) if entry.oauth2_command else None
        self._status = StatusBox(entry.name)
        self._status.update(uidvalidity=self._state.uidvalidity, last_uid=self._state.last_uid)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handled: set[int] = set()  # handled UIDs above the watermark (a failure below)
        self._failures: dict[int, _Failure] = {}
        self._puts_ok = 0  # spool.put successes so far: proof the spool itself works
        self._attempt = 0
        self._last_logged = ""
        self._contact_at = time.monotonic()  # stall clock starts when the poller starts
        self._saved_at = 0.0
        self._persisted = self._state  # what the state file says
        self._stalled = False
        self._pool = ThreadPoolExecutor(PUT_WORKERS, thread_name_prefix=f"imap-{self.name}-put")

    # -- thread control -------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"imap-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> PollerStatus:
        return self._status.get()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                delay = self._one_session()
                if delay:
                    self._status.update(state="backoff", connected=False)
                    self._sleep(delay)
        finally:
            self._pool.shutdown(wait=True)
            self._status.update(state="stopped", connected=False)

    def _one_session(self) -> float:
        """Connect and work until stopped; on a fault log it and return the wait before retry."""
        try:
            self._session()
            return 0.0
        except LoginFailed as err:
            return self._fault(str(err), self.entry.backoff_max)
        except ImapFault as err:
            return self._fault(str(err), self._backoff())
        except (OSError, IMAPClientError) as err:
            return self._fault(describe(err), self._backoff())
        except Exception as err:  # a bug: keep the thread alive, show the traceback once
            log.exception("imap %s: unexpected error", self.name)
            return self._fault(f"internal error: {type(err).__name__}: {err}", self._backoff())

    def _backoff(self) -> float:
        delay = min(self.entry.backoff_max, BACKOFF_BASE * 2 ** self._attempt)
        return delay * random.uniform(0.8, 1.0)

    def _fault(self, message: str, delay: float) -> float:
        self._attempt += 1
        self._status.update(last_error=message, last_error_at=clock.now(), connected=False)
        self._status.add("errors", 1)
        if message != self._last_logged:
            log.error("imap %s: %s; retrying in %.3g s", self.name, message, delay)
            self._last_logged = message
        else:
            log.debug("imap %s: still failing (attempt %d): %s", self.name, self._attempt, message)
        return delay

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stop.is_set() and (left := end - time.monotonic()) > 0:
            self._check_stall()
            self._stop.wait(min(left, 1.0))

    # -- contact and stall tracking ---------------------------------------------------

    def _contact(self) -> None:
        self._contact_at = time.monotonic()
        if self._stalled:
            self._stalled = False
            log.warning("imap %s: reachable again", self.name)
        self._status.update(last_contact=clock.now(), stalled_since=None)

    def _check_stall(self) -> None:
        silent = time.monotonic() - self._contact_at
        if self._stalled or silent < self.entry.stall_alert_after:
            return
        self._stalled = True
        status = self._status.get()
        since = status.last_contact or clock.now()
        error = status.last_error or "no answer"
        self._status.update(stalled_since=since)
        log.error("imap %s: not reached for %.0f s (last error: %s)", self.name, silent, error)
        if self.on_stall is not None:
            try:
                self.on_stall(self.name, since, error)
            except Exception:
                log.exception("imap %s: on_stall callback failed", self.name)

    # -- one connection ------------------------------------------------------------------

    def _session(self) -> None:
        self._status.update(state="connecting")
        client = connect(self.entry, self._tokens)
        try:
            self._contact()
            self._select(client)
            if self._last_logged:
                log.warning("imap %s: connected again", self.name)
                self._last_logged = ""
            self._status.update(connected=True, last_error=None)
            deadline = self._session_deadline()
            while not self._stop.is_set() and time.monotonic() < deadline:
                self._drain(client)
                self._attempt = 0  # only a completed drain proves the fault is gone
                self._wait_for_mail(client, deadline)
        finally:
            logout(client)

    def _session_deadline(self) -> float:
        """XOAUTH2 sessions end before the token expires; the next login gets a fresh one."""
        if self._tokens is None:
            return float("inf")
        return max(self._tokens.expires_at - 60.0, time.monotonic() + 60.0)

    def _select(self, client: IMAPClient) -> None:
        folder = self.entry.folder
        try:
            info = client.select_folder(folder)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as err:
            raise ImapFault(f"folder {folder!r} cannot be selected: {describe(err)}") from None
        uidvalidity = int(info[b"UIDVALIDITY"])
        known = self._state.uidvalidity
        if known is not None and known != uidvalidity:
            log.warning("imap %s: UIDVALIDITY of %r changed (%s -> %s): rescanning the whole "
                        "folder; mails stored before are dropped downstream as duplicates",
                        self.name, folder, known, uidvalidity)
            self._handled.clear()
            self._failures.clear()
        if known != uidvalidity:
            self._save(MailboxState(uidvalidity, 0))
        if self.entry.after == "move":
            ops.ensure_folder(client, self.entry.move_to, self.name)
        self._status.update(idle_offered=client.has_capability("IDLE"))

    def _save(self, state: MailboxState, *, persist: bool = True) -> None:
        self._state = state
        if persist or time.monotonic() - self._saved_at >= SAVE_EVERY:
            self._statefile.save(state)
            self._saved_at = time.monotonic()
            self._persisted = state
        self._status.update(uidvalidity=state.uidvalidity, last_uid=state.last_uid)

    def _save_pending(self) -> None:
        if self._state != self._persisted:
            self._save(self._state)

    # -- waiting -----------------------------------------------------------------------

    def _wait_for_mail(self, client: IMAPClient, deadline: float) -> None:
        if self.entry.idle and client.has_capability("IDLE"):
            self._idle(client, min(deadline, time.monotonic() + self.entry.idle_refresh))
        else:
            self._status.update(state="polling")
            self._stop.wait(max(0.0, min(self.entry.poll_interval, deadline - time.monotonic())))
            if not self._stop.is_set():
                client.noop()
                self._contact()

    def _idle(self, client: IMAPClient, until: float) -> None:
        """IDLE until new mail (EXISTS), the refresh time, or stop; keepalives don't end it."""
        client.idle()
        self._status.update(state="idle")  # the server said "+ idling"
        # Mail that arrived between our SEARCH and the IDLE command is announced before
        # the server's "+ idling", where imaplib files it away and idle_check() never
        # sees it: without this check such a mail would wait for the next refresh.
        # Announced just after it, in the same packet, it waits in imaplib's buffer,
        # where idle_check() (which polls the socket) does not look: ops.read_ahead.
        early = client._imap.untagged_responses.pop("EXISTS", None)
        try:
            while not early and not self._stop.is_set() and time.monotonic() < until:
                responses = ops.read_ahead(client) or client.idle_check(
                    timeout=min(1.0, max(until - time.monotonic(), 0)))
                if responses:
                    self._contact()
                if any(r[0] == b"BYE" for r in responses):
                    raise ImapFault(f"server closed the connection: {ops.bye_text(responses)}")
                if any(len(r) > 1 and r[1] == b"EXISTS" for r in responses):
                    break
                if not responses and ops.peer_closed(client):
                    raise ImapFault("connection lost: closed by the server or the network")
                self._check_stall()
        except BaseException:
            # the connection is lost or closing: what ended the IDLE is the error to
            # report, not the DONE that cannot be sent on it any more
            with contextlib.suppress(OSError, IMAPClientError):
                client.idle_done()
            raise
        client.idle_done()
        self._contact()

    # -- draining ----------------------------------------------------------------------

    def _drain(self, client: IMAPClient) -> None:
        last = self._state.last_uid
        uids = sorted(u for u in client.search(["UID", f"{last + 1}:*"])
                      if u > last and u not in self._handled)
        self._contact()
        if not uids:
            return
        self._status.update(state="fetching", backlog=len(uids))
        progress = ops.Progress(self.name, len(uids), self.entry.batch_size)
        plan = ops.batches(client, uids, self.entry.batch_size)
        try:
            if len(plan) == 1:
                self._process(client, plan[0])
                self._advance(uids)
                progress.tick(len(plan[0]))
            else:
                self._work_backlog(client, plan, uids, progress)
        finally:
            self._save_pending()
        progress.finish()
        self._status.update(backlog=0)

    def _process(self, client: IMAPClient, uids: list[int]) -> None:
        """One batch, all on the main connection: fetch, store, after-action."""
        bodies, fetch_failed = ops.fetch(client, uids)
        stored, put_failed = self._store(bodies)
        ops.after_stored(client, stored, self.entry.after, self.entry.move_to, self.name)
        ops.forget_notices(client)
        self._settle(client, uids, bodies, fetch_failed, Stored(stored, put_failed, None))

    def _work_backlog(self, client: IMAPClient, plan: list[list[int]], uids: list[int],
                      progress: ops.Progress) -> None:
        """Fetch here while workers store and move earlier batches (imap_backlog.py)."""
        assert self._state.uidvalidity is not None  # set by _select
        in_flight: deque[tuple[list[int], set[int], dict[int, str], int, Future[Stored]]]
        in_flight = deque()
        held = 0  # bytes fetched and not yet settled (an upper bound of what waits in memory)

        def settle_oldest() -> None:
            nonlocal held
            batch, fetched, fetch_failed, size, future = in_flight.popleft()
            done = future.result()
            held -= size
            if done.after_error is not None:  # logged once by the mover
                ops.after_stored(client, done.stored, self.entry.after, self.entry.move_to,
                                 self.name)
            ops.forget_notices(client)
            self._settle(client, batch, fetched, fetch_failed, done)
            self._advance(uids)
            progress.tick(len(batch))
            self._status.update(backlog=max(0, len(uids) - progress.done))

        with Backlog(self.entry, self._tokens, self._state.uidvalidity, self._store) as workers:
            for batch in plan:
                if self._stop.is_set():
                    break
                bodies, fetch_failed = ops.fetch(client, batch)
                size = sum(map(len, bodies.values()))
                held += size
                in_flight.append((batch, set(bodies), fetch_failed, size,
                                  workers.submit(bodies)))
                del bodies  # the store thread holds them until they are on disk
                while in_flight and (len(in_flight) > MAX_IN_FLIGHT or held > MAX_HELD
                                     or in_flight[0][4].done()):
                    settle_oldest()
            workers.no_more()
            while in_flight:
                settle_oldest()

    def _settle(self, client: IMAPClient, batch: list[int], fetched: Container[int],
                fetch_failed: dict[int, str], done: Stored) -> None:
        """Book one batch whose stored mails have had their after-action."""
        puts_ok_before = self._puts_ok
        vanished = [u for u in batch if u not in fetched and u not in fetch_failed]
        self._handled.update(done.stored, vanished)
        if done.stored:
            self._puts_ok += len(done.stored)
            self._status.add("spooled", len(done.stored))
            self._notify()
        self._count_failures(client, fetch_failed, None)
        self._count_failures(client, done.put_failed, puts_ok_before)
        if done.put_failed and not done.stored:
            raise SpoolUnavailable(f"spool unavailable, mails stay on the server: "
                                   f"{next(iter(done.put_failed.values()))}")

    def _store(self, bodies: dict[int, bytes]) -> tuple[list[int], dict[int, str]]:
        """spool.put every mail (in parallel); returns stored UIDs and failures."""
        uids = sorted(bodies)
        if len(uids) > 1:
            try:
                # one fsync for the batch; the pipeline splits it later, off this path
                self.spool.put_bundle([(bodies[u], self._envelope(u)) for u in uids])
                return uids, {}
            except TemporaryError as err:
                # one by one, to learn which mails are the trouble
                log.warning("imap %s: could not spool %d mails as one bundle (%s); "
                            "spooling them one by one", self.name, len(uids), err)
        results = self._pool.map(lambda u: self._put(u, bodies[u]), uids)
        stored: list[int] = []
        failed: dict[int, str] = {}
        for uid, error in zip(uids, results, strict=True):
            if error is None:
                stored.append(uid)
            else:
                failed[uid] = error
        return stored, failed

    def _envelope(self, uid: int) -> Envelope:
        user = self.entry.username
        extra: dict[str, object] = {"imap_uid": uid, "uidvalidity": self._state.uidvalidity,
                                    "folder": self.entry.folder}
        if self.entry.queue:
            extra["queue"] = self.entry.queue
        return Envelope(route=f"imap:{self.name}",
                        rcpt_tos=(user,) if "@" in user else (), extra=extra)

    def _put(self, uid: int, raw: bytes) -> str | None:
        try:
            self.spool.put(raw, self._envelope(uid))
        except TemporaryError as err:
            return str(err)
        return None

    def _notify(self) -> None:
        if self.on_spooled is not None:
            try:
                self.on_spooled()
            except Exception:
                log.exception("imap %s: on_spooled callback failed", self.name)

    # -- after storing -----------------------------------------------------------------

    def _count_failures(self, client: IMAPClient, failed: dict[int, str],
                        puts_ok_before: int | None) -> None:
        """Count each mail's failures; after MAX_FAILURES move it to the quarantine folder.

        A failed put only counts against the mail when the spool took other mails
        since (otherwise it is a local outage, e.g. a full disk, and nobody's fault).
        """
        doomed: list[int] = []
        for uid, reason in failed.items():
            f = self._failures.setdefault(uid, _Failure(0, reason, puts_ok_before))
            f.count, f.reason = f.count + 1, reason
            log.warning("imap %s: UID %d not stored (attempt %d/%d): %s", self.name, uid,
                        f.count, MAX_FAILURES, reason)
            proven = f.puts_ok_before is None or self._puts_ok > f.puts_ok_before
            if f.count >= MAX_FAILURES and proven:
                doomed.append(uid)
        if not doomed:
            return
        folder = self.entry.quarantine_folder
        ops.move(client, doomed, folder, self.name)
        for uid in doomed:
            log.error("imap %s: UID %d failed %d times (%s): moved to %r", self.name, uid,
                      self._failures[uid].count, self._failures.pop(uid).reason, folder)
        self._handled.update(doomed)
        self._status.add("quarantined", len(doomed))

    def _advance(self, uids: list[int]) -> None:
        """Move the watermark over the handled prefix; persist it now and then (SAVE_EVERY)."""
        last = self._state.last_uid
        for uid in uids[bisect.bisect_right(uids, last):]:  # uids is sorted
            if uid not in self._handled:
                break
            last = uid
        if last != self._state.last_uid:
            self._handled = {u for u in self._handled if u > last}
            self._save(MailboxState(self._state.uidvalidity, last), persist=False)

