"""Server-side sessions behind a signed cookie.

The cookie carries a random token, signed (itsdangerous) so a forged or damaged cookie
is refused without a database read; the database keeps only the token's SHA-256 with
the agent's name and when the sign-in ends. Deleting the row signs that browser out at
once, wherever the cookie still is; `close_all` is "log out everywhere".
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import delete
from sqlmodel import Session, col

from helpdesk import clock
from helpdesk.store.web_models import WebSession

COOKIE = "hd_session"


def digest(token: str) -> str:
    """What the database keeps of a secret token (sessions, sign-in links)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class CookieSigner:
    secret: bytes

    def _serializer(self) -> URLSafeSerializer:
        return URLSafeSerializer(self.secret, salt="helpdesk.web.session")

    def dumps(self, token: str) -> str:
        return str(self._serializer().dumps(token))

    def loads(self, value: str) -> str | None:
        """The token in a cookie we signed; None for anything else."""
        try:
            token = self._serializer().loads(value)
        except BadSignature:
            return None
        return token if isinstance(token, str) else None


def open_session(session: Session, agent: str, valid: timedelta, client: str = "",
                 user_agent: str = "") -> str:
    """A new sign-in for `agent`; returns the token for the cookie (not stored)."""
    token = secrets.token_urlsafe(32)
    session.add(WebSession(key=digest(token), agent=agent, expires_at=clock.now() + valid,
                           client=client[:64], user_agent=user_agent[:200]))
    return token


def find(session: Session, token: str) -> WebSession | None:
    """The live session for this token; None when unknown, revoked or expired."""
    row = session.get(WebSession, digest(token))
    if row is None or row.expires_at <= clock.now():
        return None
    return row


def close(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(col(WebSession.key) == digest(token)))


def close_all(session: Session, agent: str) -> int:
    """Sign `agent` out of every browser; the number of sessions ended."""
    result = session.execute(delete(WebSession).where(col(WebSession.agent) == agent))
    return int(result.rowcount or 0)


def sweep(session: Session) -> None:
    """Forget expired sessions (called now and then, on sign-in)."""
    session.execute(delete(WebSession).where(col(WebSession.expires_at) <= clock.now()))
