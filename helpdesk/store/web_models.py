"""Tables of the web desk's sign-in (migration 0004_web_auth); imported by models.py so
the metadata is complete wherever the models are.

Secrets are never stored, only their SHA-256: a copy of the database signs no one in.

- WebSession: one row per signed-in browser; the cookie carries the (signed) token
  whose hash is the key. Deleting the row signs that browser out; deleting all of an
  agent's rows is "log out everywhere".
- WebLoginToken: a magic link, single use (used_at is set by one conditional UPDATE,
  so two daemons cannot both accept it) and short-lived (expires_at).
- WebPassword: the optional argon2id hash per agent name.
- WebAttempt: one row per sign-in attempt, keyed by a hash of the address or client
  IP, counted over a window: in the database so every daemon sees the same count.
- WebPresence: an agent has a ticket's reply box open, until expires_at (kept alive
  by the page's heartbeat); in the database so agents on other daemons see it too
  (migration 0006_web_presence).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from helpdesk.store.columns import UTCDateTime, _now


class WebSession(SQLModel, table=True):
    __tablename__ = "web_session"

    key: str = Field(primary_key=True, max_length=64)
    agent: str = Field(index=True, max_length=100)
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    client: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=200)


class WebLoginToken(SQLModel, table=True):
    __tablename__ = "web_login_token"

    key: str = Field(primary_key=True, max_length=64)
    agent: str = Field(index=True, max_length=100)
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebPassword(SQLModel, table=True):
    __tablename__ = "web_password"

    agent: str = Field(primary_key=True, max_length=100)
    hash: str = Field(max_length=200)
    set_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)


class WebAttempt(SQLModel, table=True):
    __tablename__ = "web_attempt"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(index=True, max_length=64)
    at: datetime = Field(default_factory=_now, sa_type=UTCDateTime, index=True)


class WebPresence(SQLModel, table=True):
    __tablename__ = "web_presence"

    ticket_id: int = Field(primary_key=True)
    agent: str = Field(primary_key=True, max_length=100)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
