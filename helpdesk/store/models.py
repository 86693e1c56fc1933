"""The tables. Schema changes go through Alembic (helpdesk/migrations)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index, Integer, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from helpdesk.config.priority import Priority
from helpdesk.store.columns import UTCDateTime, _list, _now


class Status(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"


def msgid_key(message_id: str) -> str:
    """Message-IDs can be kilobytes long; index a fixed-size hash of them instead."""
    return hashlib.sha256(message_id.strip().strip("<>").encode("utf-8", "replace")).hexdigest()


class Contact(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True, max_length=320)
    name: str = Field(default="")
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)


class Ticket(SQLModel, table=True):
    # the desk's open-ticket lists and tab counts read this index alone (0007_desk_indexes;
    # on PostgreSQL it is ix_ticket_desk_pg, the same with the id included: 0015_desk_pg)
    __table_args__ = (Index("ix_ticket_desk", "status", "queue", "assignee", "priority",
                            "first_response_at"),)

    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(default="", sa_type=Text)
    status: str = Field(default=Status.NEW, index=True, max_length=16)
    priority: str = Field(default=Priority.NORMAL, max_length=16)
    category: str = Field(default="", max_length=100)
    queue: str = Field(default="support", index=True, max_length=100)
    assignee: str = Field(default="", index=True, max_length=100)
    tags: list[str] = Field(default_factory=_list, sa_column=Column(JSON, nullable=False))
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    linked_ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    spam: bool = Field(default=False)
    # where the first message came from (mail, web, api: ingest/web_form.channel) and,
    # for a web form's request, whether the visitor still has to confirm their address
    channel: str = Field(default="mail", max_length=16)
    unconfirmed: bool = Field(default=False)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # SLA from then
    # opened by an agent with no customer (agents/new_ticket.py): never mails a customer
    internal: bool = Field(default=False)
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime, index=True)
    first_response_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Message(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    direction: str = Field(default="in", max_length=4)
    internal: bool = Field(default=False)
    message_id: str = Field(default="", sa_type=Text)
    msgid_key: str = Field(default="", index=True, max_length=64)
    dedupe_key: str = Field(unique=True, max_length=64)
    content_hash: str = Field(default="", max_length=64)
    in_reply_to: str = Field(default="", sa_type=Text)
    references: str = Field(default="", sa_type=Text)
    from_addr: str = Field(default="", max_length=320)
    from_name: str = Field(default="", sa_type=Text)
    to: list[str] = Field(default_factory=_list, sa_column=Column(JSON, nullable=False))
    cc: list[str] = Field(default_factory=_list, sa_column=Column(JSON, nullable=False))
    subject: str = Field(default="", sa_type=Text)
    body_text: str = Field(default="", sa_type=Text)
    body_html: str = Field(default="", sa_type=Text)
    raw_path: str = Field(default="", sa_type=Text)
    route: str = Field(default="", max_length=100)
    threaded_by: str = Field(default="", sa_type=Text)
    defects: list[str] = Field(default_factory=_list, sa_column=Column(JSON, nullable=False))
    size: int = Field(default=0)
    sent_date: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)


class Attachment(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", index=True)
    filename: str = Field(default="", sa_type=Text)
    content_type: str = Field(default="application/octet-stream", max_length=255)
    size: int = Field(default=0)
    sha256: str = Field(max_length=64, index=True)
    inline: bool = Field(default=False)
    content_id: str = Field(default="", sa_type=Text)


class Event(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    actor: str = Field(default="system", max_length=320)
    kind: str = Field(max_length=40)
    field: str = Field(default="", max_length=40)
    old: str = Field(default="", sa_type=Text)
    new: str = Field(default="", sa_type=Text)
    detail: str = Field(default="", sa_type=Text)


class Outbox(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    kind: str = Field(max_length=40)
    automatic: bool = Field(default=True)
    mail_from: str = Field(max_length=320)
    rcpt_tos: list[str] = Field(default_factory=_list, sa_column=Column(JSON, nullable=False))
    recipient: str = Field(default="", index=True, max_length=320)
    message_id: str = Field(default="", sa_type=Text)
    msgid_key: str = Field(default="", index=True, max_length=64)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(default="queued", index=True, max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    last_error: str = Field(default="", sa_type=Text)
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # the agent a notification went to: a reply In-Reply-To it proves that agent
    agent: str = Field(default="", index=True, max_length=100)


class Quarantine(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    reason: str = Field(sa_type=Text)
    route: str = Field(default="", max_length=100)
    mail_from: str = Field(default="", sa_type=Text)
    rcpt_tos: list[str] = Field(default_factory=_list, sa_column=Column(JSON, nullable=False))
    message_id: str = Field(default="", sa_type=Text)
    content_hash: str = Field(default="", index=True, max_length=64)
    raw_path: str = Field(sa_type=Text)
    size: int = Field(default=0)
    status: str = Field(default="held", max_length=16)
    released_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AgentRecord(SQLModel, table=True):
    """An agent's stable number, signed into their reply addresses (support+hd-7-a3-...).

    Numbered on first use by name, so reordering agents.toml never re-addresses anyone;
    a renamed agent gets a new number and the old addresses stop working for them.
    """

    __tablename__ = "agent"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=100)
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)


class Watcher(SQLModel, table=True):
    """Agents told of every customer reply on a ticket besides its assignee."""

    ticket_id: int = Field(foreign_key="ticket.id", primary_key=True)
    agent: str = Field(primary_key=True, max_length=100)
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)


class Review(SQLModel, table=True):
    """An agent asked to resolve a ticket in a review queue; the team lead decides.

    `held_message_id` is the agent's reply to the customer, kept internal until approved.
    """

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    agent: str = Field(max_length=100)
    # pending, approved, rejected, or withdrawn (the customer wrote before the lead decided)
    status: str = Field(default="pending", max_length=16, index=True)
    target_status: str = Field(default="resolved", max_length=16)
    held_message_id: int | None = Field(default=None, foreign_key="message.id")
    decided_by: str = Field(default="", max_length=100)
    reason: str = Field(default="", sa_type=Text)
    requested_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# -- the scheduler's tables (migration 0003_scheduler) --------------------------------
#
# - TicketStep: one row per scheduled step done on a ticket (an SLA warning, a
#   breach, a stale reminder, a survey). Unique on (ticket, key): whoever inserts
#   it first performs the step, so a double run or a second daemon cannot repeat it.
# - TicketTimer: when each ticket next needs a look; the pass reads only due rows
#   through the due_at index, never all tickets.
# - SchedulerState: small named values (the change watermark, the config
#   fingerprint).
# - Survey: one per ticket; the latest rating replaces the earlier one.


class TicketStep(SQLModel, table=True):
    __tablename__ = "ticket_step"
    __table_args__ = (UniqueConstraint("ticket_id", "key", name="uq_ticket_step_ticket_key"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    key: str = Field(max_length=120)
    at: datetime = Field(default_factory=_now, sa_type=UTCDateTime, index=True)
    detail: str = Field(default="", max_length=400)


class TicketTimer(SQLModel, table=True):
    __tablename__ = "ticket_timer"
    # the desk's overdue and at-risk views read this index alone (0008_desk_speed)
    __table_args__ = (Index("ix_ticket_timer_due_key", "due_at", "key"),)

    ticket_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    due_at: datetime = Field(sa_type=UTCDateTime, index=True)
    key: str = Field(default="", max_length=120)


class SchedulerState(SQLModel, table=True):
    __tablename__ = "scheduler_state"

    name: str = Field(primary_key=True, max_length=40)
    value: str = Field(default="", max_length=200)


class Survey(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", unique=True)
    contact: str = Field(default="", index=True, max_length=320)
    agent: str = Field(default="", max_length=100)
    queue: str = Field(default="", max_length=100)
    scale: str = Field(default="1-5", max_length=10)
    sent_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime, index=True)
    msgid_key: str = Field(default="", index=True, max_length=64)
    score: int | None = Field(default=None)
    good: bool | None = Field(default=None)
    comment: str = Field(default="", max_length=4000)
    rated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rated_via: str = Field(default="", max_length=8)


# the web desk's tables live in their own module (it imports only columns); importing
# it here registers them wherever the models are
from helpdesk.store import (  # noqa: E402
    api_models,  # noqa: F401  (tokens, webhooks: 0012_api)
    blob_models,  # noqa: F401  (originals and attachments in PostgreSQL: 0016_blobs_pg)
    kb_models,  # noqa: F401  (the knowledge base: 0010_kb)
    ops_models,  # noqa: F401  (links, merges: 0011_ticket_ops)
    web_models,  # noqa: F401
)
