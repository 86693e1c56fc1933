"""Tables of the JSON API (migration 0012_api); imported by models.py so the metadata is
complete wherever the models are.

- ApiToken: one row per token. Only the SHA-256 of the token is kept (`key`): a token
  is 32 random bytes, so a fast hash is as good as a slow one and costs nothing per
  request; a copy of the database authenticates no one. `agent` is whose permissions
  the token carries (an integration's token names the agent it acts as); `scope` read
  or write; a revoked token keeps its row (revoked_at) so the log still names it.
- HookEvent: a webhook event, written by store/hook_events.py in the transaction that
  made the change it tells of (so an event exists exactly when its change committed).
  `fanned_out` is set when the hooks' deliveries have been made from it; an event no
  hook wants is deleted then instead (outgoing/hooks.py), so none pile up without hooks.
- HookDelivery: one event to one hook: the outbox of webhooks, claimed with a lease
  and marked sent as outgoing/outbox.py does with mail, and the delivery log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from helpdesk.store.columns import UTCDateTime, _dict, _now


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=64)
    hint: str = Field(default="", max_length=16)  # the token's first characters, to tell
    agent: str = Field(index=True, max_length=100)
    name: str = Field(default="", max_length=100)
    scope: str = Field(default="read", max_length=8)
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class HookEvent(SQLModel, table=True):
    __tablename__ = "hook_event"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(index=True)
    kind: str = Field(max_length=40)
    payload: dict[str, Any] = Field(default_factory=_dict,
                                    sa_column=Column(JSON, nullable=False))
    at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    fanned_out: bool = Field(default=False, index=True)


class HookDelivery(SQLModel, table=True):
    __tablename__ = "hook_delivery"
    __table_args__ = (UniqueConstraint("event_id", "hook", name="uq_hook_delivery_event_hook"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="hook_event.id", index=True)
    hook: str = Field(index=True, max_length=40)
    status: str = Field(default="queued", index=True, max_length=16)  # sending, sent, dead
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime, index=True)
    last_error: str = Field(default="", max_length=1000)
    last_status: int | None = Field(default=None)  # the receiver's HTTP status
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
