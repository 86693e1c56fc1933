"""Working a backlog as a pipeline: fetch batch N+2 while N+1 is stored and N is moved.

The poller's main connection only fetches. A store thread writes each fetched
batch to the spool; a mover thread with a second connection of its own then does
the after-action (move / flag / delete) for everything stored so far, in one
command: the server's per-command cost is paid once for several batches, and
its work overlaps our next FETCH instead of following it. The durability order
is unchanged: a mail is moved only after the spool has it, and the poller marks
it handled (and advances its last-UID) only after the move is confirmed.

The second connection is opened for a backlog only (more than one batch) and
closed when the backlog is done. If it fails (a server that allows one
connection per user, a dropped socket), it is not tried again for this backlog:
each batch then reports why, and the poller does the after-action on its main
connection.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from helpdesk.config.imap import ImapSection
from helpdesk.ingest import imap_ops as ops
from helpdesk.ingest.imap_connect import ImapFault, TokenSource, connect, describe, logout

log = logging.getLogger("helpdesk.ingest.imap")

GROUP = 4  # batches per MOVE at most (the poller keeps more than that in flight)
GROUP_WAIT = 0.05  # seconds to wait for the next stored batch before moving

Store = Callable[[dict[int, bytes]], tuple[list[int], dict[int, str]]]


@dataclass(frozen=True)
class Stored:
    """What became of one fetched batch on the worker."""

    stored: list[int]  # in the spool
    put_failed: dict[int, str]  # UID -> why the spool refused it
    after_error: str | None  # None: the after-action is done for every stored UID


class Backlog:
    """A store thread and a mover thread with its own connection, for one backlog."""

    def __init__(self, entry: ImapSection, tokens: TokenSource | None, uidvalidity: int,
                 store: Store) -> None:
        self.entry = entry
        self._tokens = tokens
        self._uidvalidity = uidvalidity
        self._store = store
        self._client: IMAPClient | None = None
        self._broken: str | None = None
        self._ending = False
        self._storer = ThreadPoolExecutor(1, thread_name_prefix=f"imap-{entry.name}-store")
        self._stored: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._mover = threading.Thread(target=self._move_loop, daemon=True,
                                       name=f"imap-{entry.name}-move")
        self._mover.start()

    def __enter__(self) -> Backlog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, bodies: dict[int, bytes]) -> Future[Stored]:
        """Store, then move; the future says what became of the batch."""
        done: Future[Stored] = Future()
        self._storer.submit(self._store_one, bodies, done)
        return done

    def no_more(self) -> None:
        """The last batch is submitted: the mover need not wait for another to join it."""
        if not self._ending:
            self._ending = True
            self._storer.submit(self._stored.put, None)  # after the stores, in order

    def close(self) -> None:
        """Finish the batches in hand, then log the second connection out."""
        self.no_more()
        self._storer.shutdown(wait=True)
        self._mover.join()
        self._drop()

    def _store_one(self, bodies: dict[int, bytes], done: Future[Stored]) -> None:
        try:
            stored, put_failed = self._store(bodies)
        except BaseException as err:  # a bug: the poller re-raises it from the future
            done.set_exception(err)
            return
        self._stored.put(_Pending(stored, put_failed, done))

    def _move_loop(self) -> None:
        while True:
            item = self._stored.get()
            if item is None:
                return
            batches = [item]
            last = False
            # a few batches per command: the server's cost per MOVE is most of a small
            # batch's; wait briefly for the next ones while the fetch keeps coming
            while len(batches) < GROUP:
                try:
                    more = self._stored.get(timeout=GROUP_WAIT)
                except queue.Empty:
                    break
                if more is None:
                    last = True
                    break
                batches.append(more)
            error = self._after([u for b in batches for u in b.stored])
            for b in batches:
                b.done.set_result(Stored(b.stored, b.put_failed, error if b.stored else None))
            if last:
                return

    def _after(self, uids: list[int]) -> str | None:
        """The after-action on the second connection; None when done, else why not."""
        if not uids or self._broken is not None:
            return self._broken
        try:
            client = self._connection()
            ops.after_stored(client, uids, self.entry.after, self.entry.move_to,
                             self.entry.name)
            ops.forget_notices(client)
        except (ImapFault, OSError, IMAPClientError) as err:
            self._drop()
            self._broken = describe(err)
            log.warning("imap %s: second connection for the backlog failed (%s); the main "
                        "connection does the %s from here", self.entry.name, self._broken,
                        self.entry.after)
            return self._broken
        except BaseException as err:  # a bug: never leave the poller waiting on a future
            self._broken = f"internal error: {type(err).__name__}: {err}"
            log.exception("imap %s: backlog mover failed", self.entry.name)
            return self._broken
        return None

    def _connection(self) -> IMAPClient:
        if self._client is not None:
            return self._client
        client = connect(self.entry, self._tokens)
        try:
            info = client.select_folder(self.entry.folder)
            uidvalidity = int(info[b"UIDVALIDITY"])
            if uidvalidity != self._uidvalidity:
                # the UIDs in hand belong to another incarnation of the folder
                raise ImapFault(f"UIDVALIDITY changed under the poller "
                                f"({self._uidvalidity} -> {uidvalidity})")
        except BaseException:
            logout(client)
            raise
        self._client = client
        return client

    def _drop(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            logout(client)


@dataclass(frozen=True)
class _Pending:
    stored: list[int]
    put_failed: dict[int, str]
    done: Future[Stored]
