"""The queue pages' tab counts, kept between requests while nothing they count has
changed.

Counting every tab (my tickets, unassigned, each queue and status, overdue, at risk,
held for review) walks all the open tickets and probes the SLA and review tables for
each: most of a queue page's time with 10,000 open tickets (bench/web.py). An agent
looks at the same tabs again and again, so the counts of a scope (the agent and the
queues they see) are kept with the database's change mark (store/changes.py) and given
again while the mark says nothing they count has changed: the agent's own change, any
mail, any scheduler step or timer falling due shows at once. TTL bounds the rest (a
change made by hand in the database, SLA timers moved after a configuration reload).
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from helpdesk.store import changes, queries
from helpdesk.store.queries import QueueCounts, Scope, SlaKeys

TTL = 10.0  # seconds a count is given again at most
MAX_SCOPES = 1000  # kept at once (one per agent, in practice)


@dataclass(frozen=True)
class _Kept:
    mark: changes.Mark
    at: datetime  # the clock's moment it was counted (the SLA views move with it)
    expires: float  # time.monotonic()
    counts: QueueCounts


class TabCounts:
    """The counts of one database, by scope; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[tuple[Scope, SlaKeys], _Kept] = {}

    def get(self, session: Session, scope: Scope, keys: SlaKeys,
            now: datetime) -> QueueCounts:
        """queries.queue_counts(session, scope, keys, now), counted again only when the
        kept one may differ. The caller must not change what it gets."""
        mark = changes.mark(session, now)
        with self._lock:
            kept = self._kept.get((scope, keys))
        if kept is not None and time.monotonic() < kept.expires and kept.at <= now \
                and kept.mark.still(mark, now):
            return kept.counts
        counts = queries.queue_counts(session, scope, keys, now)
        with self._lock:
            if len(self._kept) >= MAX_SCOPES:
                self._kept.clear()
            self._kept[(scope, keys)] = _Kept(mark, now, time.monotonic() + TTL, counts)
        return counts


_BY_ENGINE: weakref.WeakKeyDictionary[Engine, TabCounts] = weakref.WeakKeyDictionary()
_BY_ENGINE_LOCK = threading.Lock()


def of(engine: Engine) -> TabCounts:
    """The kept counts of the database behind `engine` (each desk app has its own)."""
    with _BY_ENGINE_LOCK:
        found = _BY_ENGINE.get(engine)
        if found is None:
            found = _BY_ENGINE[engine] = TabCounts()
        return found
