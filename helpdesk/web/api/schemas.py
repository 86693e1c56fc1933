"""The API's request and response bodies and query strings, as pydantic models: routes
validate with them and openapi.py writes the document from them, so the two agree.

Strings from clients are bounded and carry no control characters (a NUL would reach
the database, which PostgreSQL refuses); unknown body keys are refused (a misspelt
field must not be silently ignored on an update).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from helpdesk.config.priority import PRIORITIES
from helpdesk.store.queries import SORTS, VIEWS

Name = Annotated[str, StringConstraints(min_length=1, max_length=100,
                                        pattern=r"^[^\x00-\x1f\x7f]+$")]
Line = Annotated[str, StringConstraints(max_length=320, pattern=r"^[^\x00-\x1f\x7f]*$")]
Body = Annotated[str, StringConstraints(max_length=100_000, pattern=r"^[^\x00]*$")]
Cursor = Annotated[str, StringConstraints(max_length=200, pattern=r"^[A-Za-z0-9_.:=-]*$")]
Address = Annotated[str, StringConstraints(max_length=320,
                                           pattern=r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")]
Status = Literal["new", "open", "pending", "resolved", "closed"]
Priority = Literal[PRIORITIES]  # type: ignore[valid-type]
View = Literal[VIEWS]  # type: ignore[valid-type]
Sort = Literal[SORTS]  # type: ignore[valid-type]
Limit = Annotated[int, Field(ge=1, le=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- answers ----------------------------------------------------------------------------

class Error(BaseModel):
    error: str = Field(description="What went wrong, for a person.")
    detail: list[str] = Field(default_factory=list, description="Each problem, one a line.")


class TicketSummary(BaseModel):
    id: int
    ref: str = Field(description="The ticket's id as mail shows it, e.g. HD-42.")
    subject: str
    status: str
    priority: str
    queue: str
    assignee: str
    category: str
    tags: list[str]
    customer: str = Field(description="The customer's address (empty without one).")
    created_at: datetime
    updated_at: datetime


class Ticket(TicketSummary):
    customer_name: str
    contact_id: int | None
    linked_ticket_id: int | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    version: str = Field(description="The ETag's value: send it back as If-Match.")


class TicketPage(BaseModel):
    items: list[TicketSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; "
                                    "null on the last.")


class AttachmentInfo(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    url: str


class MessageOut(BaseModel):
    id: int
    ticket_id: int
    direction: Literal["in", "out"]
    internal: bool = Field(description="Agents only: notes, agents' mail, automatic mail.")
    from_addr: str
    from_name: str
    to: list[str]
    cc: list[str]
    subject: str
    text: str
    created_at: datetime
    attachments: list[AttachmentInfo]


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class Segment(BaseModel):
    text: str
    match: bool


class SearchHit(BaseModel):
    ticket_id: int
    message_id: int
    subject: str
    internal: bool
    direction: str
    at: datetime
    snippet: list[Segment]


class SearchPage(BaseModel):
    items: list[SearchHit]
    next_cursor: str | None


class QueueOut(BaseModel):
    name: str
    open: int = Field(description="Open tickets (new, open, pending).")


class QueueList(BaseModel):
    items: list[QueueOut]


class Accepted(BaseModel):
    state: Literal["queued"]
    message_id: str = Field(description="The Message-ID of the mail made for the customer.")
    poll: str = Field(description="GET this until it names the ticket.")


class Submission(BaseModel):
    state: Literal["waiting", "stored"]
    ticket_id: int | None


class Applied(BaseModel):
    summary: str = Field(description="What was done, one line.")
    ticket: Ticket


# -- requests ---------------------------------------------------------------------------

class TicketQuery(Strict):
    view: View = "all"
    status: Literal["new", "open", "pending", "resolved", "closed", "any"] | None = None
    queue: Name | None = None
    assignee: Line | None = Field(None, description="A name; `me`; `none` for unassigned.")
    customer: Line | None = Field(None, description="The customer's address (exact).")
    sort: Sort = "priority"
    limit: Limit | None = None
    cursor: Cursor | None = None


class SearchQuery(Strict):
    q: Annotated[str, StringConstraints(min_length=1, max_length=1000,
                                        pattern=r"^[^\x00]*$")]
    status: Status | None = None
    queue: Name | None = None
    assignee: Name | None = None
    customer: Line | None = None
    limit: Limit | None = None
    cursor: Cursor | None = None


class PageQuery(Strict):
    limit: Limit | None = None
    cursor: Cursor | None = None


class TicketCreate(Strict):
    """A ticket on behalf of a customer: made into their mail to the helpdesk, which goes
    through the pipeline like any other (rules, deduplication, acknowledgement)."""

    from_addr: Address
    from_name: Line = ""
    subject: Annotated[str, StringConstraints(min_length=1, max_length=900,
                                              pattern=r"^[^\x00-\x1f\x7f]+$")]
    text: Annotated[str, StringConstraints(min_length=1, max_length=100_000,
                                           pattern=r"^[^\x00]*$")]


class TicketUpdate(Strict):
    """Fields to set; each becomes its #command (#status, #assign, ...)."""

    status: Literal["open", "pending", "resolved", "closed"] | None = None
    priority: Priority | None = None
    assignee: Name | None = Field(None, description="An agent's name, or `me`.")
    category: Name | None = None
    queue: Name | None = None
    tags_add: list[Name] = Field(default_factory=list, max_length=20)
    tags_remove: list[Name] = Field(default_factory=list, max_length=20)


class ReplyBody(Strict):
    text: Annotated[str, StringConstraints(min_length=1, max_length=100_000,
                                           pattern=r"^[^\x00]*\S[^\x00]*$")]
    close: bool = Field(False, description="Resolve the ticket with the reply (#close).")


class NoteBody(Strict):
    text: Annotated[str, StringConstraints(min_length=1, max_length=100_000,
                                           pattern=r"^[^\x00]*\S[^\x00]*$")]


class CommandsBody(Strict):
    commands: list[Annotated[str, StringConstraints(min_length=2, max_length=500,
                                                    pattern=r"^#[^\x00-\x1f\x7f]+$")]] = \
        Field(min_length=1, max_length=20, description="Lines like `#assign bob`: any "
              "command of the registry (GET /api/v1/commands lists them).")
    text: Body = Field("", description="Text after the commands, as in a mail reply.")


class CommandInfo(BaseModel):
    name: str
    help: str


class CommandList(BaseModel):
    items: list[CommandInfo]


class ContactQuery(Strict):
    email: Address


class ContactOut(BaseModel):
    id: int
    email: str
    name: str
    organisation: str = Field(description="By mail domain ([ticket_ops] organisations); "
                              "empty for free-mail addresses.")
    vip: bool
    created_at: datetime
    tickets: list[TicketSummary] = Field(description="Their latest tickets you may see "
                                         "(every status, newest activity first, up to 50).")


class ArticleQuery(Strict):
    q: Line = Field("", description="Words the article must have (published ones only).")
    status: Literal["draft", "published"] | None = None
    category: Line | None = None


class ArticleOut(BaseModel):
    id: int
    title: str
    question: str
    resolution: str
    category: str
    tags: list[str]
    visibility: str = Field(description="internal (agents only) or public")
    status: str = Field(description="draft or published")
    ticket_id: int | None = Field(description="The ticket it was drafted from, if any.")
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    helpful: int
    unhelpful: int
    deflections: int = Field(description="Tickets its customers closed with \"this solved "
                             "my problem\".")


class ArticleList(BaseModel):
    items: list[ArticleOut]


class StatsQuery(Strict):
    since: date | None = Field(None, description="Count from this day (default: 7 days ago).")


class Figure(BaseModel):
    count: int
    median_s: float | None
    p90_s: float | None


class Backlog(BaseModel):
    total: int
    by_status: dict[str, int]
    by_queue: dict[str, int]
    by_priority: dict[str, int]
    by_age: dict[str, int]


class Breaches(BaseModel):
    total: int
    by_sla: dict[str, int]
    by_queue: dict[str, int]


class Satisfaction(BaseModel):
    count: int
    good_share: float | None
    mean: float | None


class AgentFigures(BaseModel):
    open: int
    resolved: int
    first_response: Figure
    sla_breaches: int
    satisfaction: Satisfaction


class Stats(BaseModel):
    """`helpdesk stats` (report/stats.py): the whole helpdesk, for leads and admins."""

    since: datetime
    now: datetime
    backlog: Backlog
    first_response: Figure
    resolution: Figure
    sla_breaches: Breaches
    satisfaction: Satisfaction
    agents: dict[str, AgentFigures]
