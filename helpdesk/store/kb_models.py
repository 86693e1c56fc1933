"""The knowledge base's tables (migration 0010_kb); imported by models.py so the
metadata is complete wherever the models are.

- KbArticle: a question and its resolution, drafted from a ticket (`ticket_id`) or
  imported; a draft until a lead publishes it; internal articles show in the desk only.
  `flags` are the personal data found in its text at the last save, for the editor to
  remove; counters are the public page's "did this help?" answers and the customers
  who said an acknowledgement's suggestion solved their problem.
- KbDeflection: one per ticket a customer closed with "this solved my problem"
  (unique: a second press counts nothing), naming the article.
- KbPostMortem: cause, fix and prevention of a (high-priority) ticket, one per ticket.
The search index of articles is `kb_search` (helpdesk/kb/search.py), as message_search.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from helpdesk.store.columns import UTCDateTime, _list, _now


class KbArticle(SQLModel, table=True):
    __tablename__ = "kb_article"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(default="", max_length=300)
    question: str = Field(default="", sa_type=Text)
    resolution: str = Field(default="", sa_type=Text)
    category: str = Field(default="", index=True, max_length=100)
    tags: list[str] = Field(default_factory=_list, sa_column=Column(JSON, nullable=False))
    visibility: str = Field(default="internal", max_length=16)  # internal or public
    status: str = Field(default="draft", index=True, max_length=16)  # draft or published
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    flags: list[dict[str, str]] = Field(default_factory=_list,
                                        sa_column=Column(JSON, nullable=False))
    created_by: str = Field(default="", max_length=100)
    published_by: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    helpful: int = Field(default=0)
    unhelpful: int = Field(default=0)
    deflections: int = Field(default=0)


class KbDeflection(SQLModel, table=True):
    __tablename__ = "kb_deflection"

    ticket_id: int = Field(foreign_key="ticket.id", primary_key=True)
    article_id: int = Field(foreign_key="kb_article.id", index=True)
    customer: str = Field(default="", max_length=320)
    at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)


class KbPostMortem(SQLModel, table=True):
    __tablename__ = "kb_postmortem"

    ticket_id: int = Field(foreign_key="ticket.id", primary_key=True)
    cause: str = Field(default="", sa_type=Text)
    fix: str = Field(default="", sa_type=Text)
    prevention: str = Field(default="", sa_type=Text)
    written_by: str = Field(default="", max_length=100)
    at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
