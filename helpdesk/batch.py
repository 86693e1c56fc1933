"""Group commit: the spool side of one pipeline transaction that holds many mails.

The pipeline claims what is waiting (up to MAX_MAILS, or MAX_BYTES of mail: a 25 MiB
mail is a batch of its own) and stores each mail inside a savepoint of one transaction,
so that the batch pays for one commit (and, with store.blobsync, about one round of
fsyncs) instead of one per mail. Here is what happens to the spool entries around it:

- a mail that fails rolls back only its savepoint; it is retried or shunted at once
  (`settle`), and nothing of it is in the transaction;
- after the commit, every other entry is finished (deleted): a crash between the
  commit and these deletes leaves entries whose mails are stored, and processing them
  again finds them by their dedupe key (a duplicate, logged, nothing written);
- when the transaction cannot commit (the database is away, a blob cannot be written)
  every entry not yet settled goes back to incoming/ unchanged: an outage is nobody's
  failure and counts against no mail.

Base and spool only: imports nothing of the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from helpdesk import durable
from helpdesk.spool import Entry, Spool

MAX_MAILS = 32
MAX_BYTES = 8 << 20


def claim(spool: Spool, limit: int = MAX_MAILS, max_bytes: int = MAX_BYTES) -> list[Entry]:
    """Claim what is waiting, oldest first: up to `limit` mails or `max_bytes` of them."""
    entries: list[Entry] = []
    size = 0
    while len(entries) < limit and size < max_bytes:
        entry = spool.claim()
        if entry is None:
            break
        entries.append(entry)
        size += len(entry.raw)
    return entries


@dataclass
class Batch:
    """The entries of one transaction, and which of them went back to the spool already."""

    spool: Spool
    entries: list[Entry]
    settled: set[str] = field(default_factory=set)

    def settle_retry(self, entry: Entry) -> None:
        """A failed mail goes back at once, counted: it has nothing in the transaction."""
        self.spool.retry(entry)
        self.settled.add(entry.name)

    def settle_shunt(self, entry: Entry) -> str:
        self.settled.add(entry.name)
        return str(self.spool.shunt(entry))

    def committed(self) -> None:
        """The transaction is durable: forget the entries it stored (side by side: each
        unlink may wait for the disk on its own)."""
        durable.each(self.spool.finish, [e for e in self.entries if e.name not in self.settled])

    def give_back(self) -> list[Entry]:
        """The transaction did not commit: every entry not settled returns untouched."""
        back = [e for e in self.entries if e.name not in self.settled]
        for entry in back:
            self.spool.release(entry)
        return back
