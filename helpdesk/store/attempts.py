"""Attempts counted within a window, in the database (table web_attempt): sign-in tries,
the web form's requests, the status pages' mailed links.

In the database rather than in a daemon's memory, so that several daemons on one
PostgreSQL share one count and a restart forgets nothing; only a hash of the address
or client IP is kept, and rows older than the longest window are deleted as new ones
come.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta

from sqlmodel import Session, col, delete, func, select

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.store.web_models import WebAttempt

HOUR = timedelta(hours=1)  # the web form's and the status pages' window


def key(kind: str, value: str) -> str:
    """What the table keeps: a hash of the kind and the value, not the value itself."""
    return hashlib.sha256(f"{kind}\0{value.strip().lower()}".encode()).hexdigest()


def _kept(settings: Settings) -> timedelta:
    """The longest window any caller counts over: older rows count for nobody."""
    return max(settings.web.signin_window, HOUR)


def allow(session: Session, settings: Settings, limits: Sequence[tuple[str, str, int]],
          window: timedelta, *, count_refused: bool) -> bool:
    """Whether each (kind, value, limit) has had fewer than `limit` attempts within
    `window`; records this attempt under each (`count_refused`: also when refused, so
    that a guesser who keeps trying stays locked out). In the caller's transaction."""
    now = clock.now()
    session.execute(delete(WebAttempt).where(col(WebAttempt.at) < now - _kept(settings)))
    keys = [(key(kind, value), limit) for kind, value, limit in limits]
    allowed = all(session.exec(select(func.count()).select_from(WebAttempt).where(
        col(WebAttempt.key) == k, col(WebAttempt.at) >= now - window)).one() < limit
        for k, limit in keys)
    if allowed or count_refused:
        session.add_all(WebAttempt(key=k, at=now) for k, _ in keys)
    return allowed
