"""Tables of the scheduler (migration 0003_scheduler); imported by models.py so the
metadata is complete wherever the models are.

- TicketStep: one row per scheduled step done on a ticket (an SLA warning, a
  breach, a stale reminder, a survey). Unique on (ticket, key): whoever inserts
  it first performs the step, so a double run or a second daemon cannot repeat it.
- TicketTimer: when each ticket next needs a look; the pass reads only due rows
  through the due_at index, never all tickets.
- SchedulerState: small named values (the change watermark, the config
  fingerprint).
- Survey: one per ticket; the latest rating replaces the earlier one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from helpdesk.store.models import UTCDateTime, _now


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
