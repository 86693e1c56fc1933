"""The tables of the ticket operations (migration 0011_ticket_ops): links between
tickets, merges and time spent. Imports only columns, like web_models; models.py imports this
module so the tables are registered wherever the models are.

- TicketLink: `kind` "related" (either way round, stored once) or "parent"
  (`ticket_id`'s parent is `other_id`; a ticket has at most one parent).
- TicketMerge: one row per merge of `source_id` into `target_id`, with what moved
  (message and event ids, the watchers added to the target) so an admin can undo it
  within [ticket_ops] unmerge_window; `undone_at` is set when it was undone. The
  source's newest row with no `undone_at` makes it a pointer to its target.
- TimeEntry: minutes an agent spent on a ticket (#time), for `helpdesk stats`.
- ContactVip: customers flagged VIP, for the rules.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, ForeignKey, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from helpdesk.store.columns import UTCDateTime, _list, _now


class TicketLink(SQLModel, table=True):
    __tablename__ = "ticket_link"
    __table_args__ = (UniqueConstraint("ticket_id", "other_id", "kind",
                                       name="uq_ticket_link"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    other_id: int = Field(foreign_key="ticket.id", index=True)
    kind: str = Field(max_length=16)  # related | parent
    actor: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)


class TicketMerge(SQLModel, table=True):
    __tablename__ = "ticket_merge"

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="ticket.id", index=True)
    target_id: int = Field(foreign_key="ticket.id", index=True)
    actor: str = Field(default="", max_length=100)
    at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    status_before: str = Field(default="", max_length=16)
    message_ids: list[int] = Field(default_factory=_list, sa_column=Column(JSON, nullable=False))
    event_ids: list[int] = Field(default_factory=_list, sa_column=Column(JSON, nullable=False))
    watchers_added: list[str] = Field(default_factory=_list,
                                      sa_column=Column(JSON, nullable=False))
    # the source's #time entries, moved with the notes and replies they were given on
    time_entry_ids: list[int] = Field(default_factory=_list, sa_column=Column(
        JSON, nullable=False, server_default="[]"))
    undone_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    undone_by: str = Field(default="", max_length=100)


class TimeEntry(SQLModel, table=True):
    """Time an agent spent on a ticket (#time 25m on a reply or note); the queue is the
    ticket's when the time was given, so a later move does not re-file past work."""

    __tablename__ = "time_entry"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    agent: str = Field(max_length=100, index=True)
    queue: str = Field(default="", max_length=100)
    minutes: int = Field(default=0)
    at: datetime = Field(default_factory=_now, sa_type=UTCDateTime, index=True)


class ContactVip(SQLModel, table=True):
    """A customer marked VIP (`helpdesk contacts vip ADDR`); rules read it (`vip`)."""

    __tablename__ = "contact_vip"

    contact_id: int = Field(sa_column=Column(Integer, ForeignKey("contact.id"),
                                             primary_key=True, autoincrement=False))
    set_by: str = Field(default="", max_length=100)
    at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
