"""API tokens: made, found, listed and revoked (by `helpdesk api token ...` and the API).

A token is `hd_` + 32 random bytes (urlsafe base64); only its SHA-256 is stored. With
that much entropy a fast hash is right: no one can guess a token from its hash, and
checking one costs a microsecond, not an argon2 round per request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlmodel import Session, col, select

from helpdesk import clock
from helpdesk.store.api_models import ApiToken

PREFIX = "hd_"
SCOPES = ("read", "write")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Made:
    row_id: int
    token: str  # shown once, never stored


def create(session: Session, agent: str, scope: str, name: str = "") -> Made:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(key=digest(token), hint=token[:10], agent=agent, scope=scope,
                   name=name or agent)
    session.add(row)
    session.flush()
    return Made(int(row.id or 0), token)


def find(session: Session, token: str) -> ApiToken | None:
    """The live token row for a presented token; None for an unknown or revoked one."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    row = session.exec(select(ApiToken).where(ApiToken.key == digest(token))).first()
    return row if row is not None and row.revoked_at is None else None


def listed(session: Session, include_revoked: bool = False) -> list[ApiToken]:
    stmt = select(ApiToken).order_by(col(ApiToken.id))
    if not include_revoked:
        stmt = stmt.where(col(ApiToken.revoked_at).is_(None))
    return list(session.exec(stmt).all())


def revoke(session: Session, row_id: int) -> bool:
    row = session.get(ApiToken, row_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = clock.now()
    session.add(row)
    return True
