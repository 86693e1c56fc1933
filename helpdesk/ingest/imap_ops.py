"""Mailbox operations for the IMAP poller: batching, fetching, after-actions, progress.

Plain functions over an IMAPClient with a selected folder, all by UID. Connection
errors (IMAPClientAbortError, OSError) always propagate: the poller reconnects.
"""

from __future__ import annotations

import logging
import select
import time

from imapclient import SEEN, IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError
from imapclient.response_parser import parse_response

from helpdesk.ingest.imap_connect import describe

log = logging.getLogger("helpdesk.ingest.imap")

BATCH_BYTES = 32 * 1024 * 1024  # a fetch batch stops growing here, whatever batch_size says
PROGRESS_EVERY = 5.0


def batches(client: IMAPClient, uids: list[int], batch_size: int) -> list[list[int]]:
    """Split UIDs into fetch batches of at most batch_size mails and about BATCH_BYTES.

    Only mails LARGER than a batch's fair share (BATCH_BYTES / batch_size) have their
    size asked for: one SEARCH finds them, and every other mail counts as that share.
    Asking every mail's RFC822.SIZE would cost a backlog more than its MOVEs.
    """
    share = max(1, BATCH_BYTES // batch_size)
    big: dict[int, int] = {}
    if uids:
        wanted = set(uids)
        found = [u for u in client.search(["UID", f"{uids[0]}:*", "LARGER", str(share)])
                 if u in wanted]
        if found:
            sizes = client.fetch(found, ["RFC822.SIZE"])
            big = {u: int(sizes.get(u, {}).get(b"RFC822.SIZE", share)) for u in found}
    out: list[list[int]] = [[]]
    volume = 0
    for uid in uids:
        size = big.get(uid, share)
        if out[-1] and (len(out[-1]) >= batch_size or volume + size > BATCH_BYTES):
            out.append([])
            volume = 0
        out[-1].append(uid)
        volume += size
    return [b for b in out if b]


def fetch(client: IMAPClient, uids: list[int]) -> tuple[dict[int, bytes], dict[int, str]]:
    """Raw mails by UID (BODY.PEEK[]: no \\Seen), and UIDs whose fetch failed with why.

    When a batch fails, each UID is fetched alone to find the one that breaks it.
    A UID missing from both results has vanished (expunged by someone else).
    """
    try:
        data = client.fetch(uids, ["BODY.PEEK[]"])
    except IMAPClientAbortError:
        raise
    except IMAPClientError as err:
        if len(uids) == 1:
            return {}, {uids[0]: f"fetch failed: {describe(err)}"}
        bodies: dict[int, bytes] = {}
        failed: dict[int, str] = {}
        for uid in uids:
            b, f = fetch(client, [uid])
            bodies.update(b)
            failed.update(f)
        return bodies, failed
    wanted = set(uids)
    return {u: d[b"BODY[]"] for u, d in data.items() if u in wanted and b"BODY[]" in d}, {}


def ensure_folder(client: IMAPClient, folder: str, name: str) -> None:
    if not client.folder_exists(folder):
        client.create_folder(folder)
        log.info("imap %s: created folder %r", name, folder)


def after_stored(client: IMAPClient, uids: list[int], after: str, move_to: str,
                 name: str) -> None:
    """What the config says to do with mails that are safely in the spool."""
    if not uids:
        return
    if after == "move":
        move(client, uids, move_to, name)
    elif after == "flag":
        client.add_flags(uids, [SEEN])
    else:
        client.delete_messages(uids)
        expunge(client, uids)


def forget_notices(client: IMAPClient) -> None:
    """Drop the notices imaplib keeps after a MOVE, COPY or EXPUNGE.

    imaplib files untagged responses nobody asked for by type and never clears them
    until the next SELECT: a mailbox that runs for weeks would keep one EXPUNGE per
    mail it ever moved, and one COPYUID per command.
    """
    for kind in ("EXPUNGE", "VANISHED", "COPYUID", "RECENT"):
        client._imap.untagged_responses.pop(kind, None)


def move(client: IMAPClient, uids: list[int], folder: str, name: str) -> None:
    """MOVE, or COPY + \\Deleted + UID EXPUNGE; recreates the target folder if it vanished."""
    try:
        _move_once(client, uids, folder)
    except IMAPClientAbortError:
        raise
    except IMAPClientError:
        if client.folder_exists(folder):
            raise
        ensure_folder(client, folder, name)
        _move_once(client, uids, folder)


def _move_once(client: IMAPClient, uids: list[int], folder: str) -> None:
    if client.has_capability("MOVE"):
        client.move(uids, folder)
        return
    client.copy(uids, folder)
    client.delete_messages(uids)
    expunge(client, uids)


def expunge(client: IMAPClient, uids: list[int]) -> None:
    if client.has_capability("UIDPLUS"):
        client.uid_expunge(uids)
    else:
        client.expunge()  # without UIDPLUS: expunges every \Deleted mail in the folder


def peer_closed(client: IMAPClient) -> bool:
    """True when the server's end of the socket is closed or broken.

    imapclient's idle_check swallows the EOF of a dropped connection and returns
    no responses, at once, every time: without this check an IDLE loop would spin
    on a dead socket until its refresh time. Works under TLS too (it asks the
    kernel about the TCP connection, not the TLS stream).
    """
    hangup = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)
    poller = select.poll()
    poller.register(client.socket().fileno(), hangup)
    return any(events & hangup for _, events in poller.poll(0))


def read_ahead(client: IMAPClient) -> list[tuple[object, ...]]:
    """The untagged responses already off the socket, waiting in imaplib's buffer (or
    the TLS layer's), parsed as idle_check parses them (its parser is private).

    A server may send an untagged response in the same packet as the "+ idling" that
    idle() reads (Dovecot does, for mail that arrives as IDLE begins): imaplib's line
    reader takes the whole packet into its buffer, and idle_check, which polls the
    socket, never learns of the rest; that mail would wait for the IDLE's refresh.
    """
    found: list[tuple[object, ...]] = []
    while _buffered(client):
        line = client._imap._get_line()  # the rest of a partial line is on its way
        if line.startswith(b"* "):
            text = line[2:]
            found.append(tuple(text.split(b" ", 1)) if text.startswith((b"OK ", b"NO "))
                         else parse_response([text]))
    return found


def _buffered(client: IMAPClient) -> bool:
    # peek answers from imaplib's buffer, else with one read that must not wait; under
    # TLS that read also yields what the TLS layer already holds
    sock = client.socket()
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return bool(client._imap.file.peek(1))
    except OSError:  # nothing yet (EAGAIN, TLS want-read), or a broken connection, which
        return False  # idle_check and peer_closed see and report as the poller expects
    finally:
        sock.settimeout(timeout)


def bye_text(responses: list[tuple[object, ...]]) -> str:
    for r in responses:
        if r[0] == b"BYE" and len(r) > 1 and isinstance(r[1], bytes):
            return r[1].decode("utf-8", "replace")
    return "BYE"


class Progress:
    """A log line every PROGRESS_EVERY seconds while a backlog (> one batch) is worked."""

    def __init__(self, name: str, total: int, quiet_below: int) -> None:
        self.name, self.total, self.done = name, total, 0
        self.loud = total > quiet_below
        self.start = self.last = time.monotonic()

    def tick(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.loud and now - self.last >= PROGRESS_EVERY:
            self.last = now
            log.info("imap %s: backlog %d/%d mails stored, %.0f mails/s",
                     self.name, self.done, self.total, self.done / (now - self.start))

    def finish(self) -> None:
        if self.loud:
            took = max(time.monotonic() - self.start, 1e-6)
            log.info("imap %s: backlog done, %d/%d mails stored in %.1f s (%.0f mails/s)",
                     self.name, self.done, self.total, took, self.done / took)
