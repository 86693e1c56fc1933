"""What a ticket's status page shows its customer, built from the store in one session:
the status in words, the public conversation, the SLA promise in human terms.

The conversation is queries.conversation (what the customer side sees: never internal
messages, so never agents' notes, automatic answers, mail from strangers, nor a reply
held for review until a lead releases it). Agents appear by their shown name unless
[portal] show_agent_names is off, and never with their address unless
[portal] show_agent_addresses is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from helpdesk.config import agents
from helpdesk.config.agents import Directory
from helpdesk.config.settings import Settings
from helpdesk.kb import suggest as kb_suggest
from helpdesk.mail import replytext
from helpdesk.outgoing import portal_links
from helpdesk.schedule.sla import SlaContext
from helpdesk.store import queries, ticket_ops
from helpdesk.store.models import Contact, Message, Status, Ticket

OPEN_STATUSES = (Status.NEW, Status.OPEN, Status.PENDING)


@dataclass(frozen=True)
class Entry:
    """One message of the conversation as the customer sees it."""

    who: str
    ours: bool  # written by the helpdesk (an agent's reply)
    at: str
    text: str


@dataclass(frozen=True)
class Suggestion:
    """An article that may answer the customer's question (`suggestions`)."""

    title: str
    url: str


@dataclass(frozen=True)
class Linked:
    """Another request of the same customer linked to this one (#merge, #parent, #link)."""

    relation: str  # "Merged into", "Part of", "Includes", "Related"
    public_id: str
    subject: str
    status_words: str
    url: str  # its own status page


@dataclass(frozen=True)
class TicketView:
    public_id: str
    subject: str
    status: str
    status_words: str
    promise: str
    entries: list[Entry]
    suggestions: list[Suggestion]
    created: str
    linked: tuple[Linked, ...] = ()

    @property
    def can_solve(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def can_reopen(self) -> bool:
        return self.status == Status.RESOLVED

    @property
    def closed(self) -> bool:
        return self.status == Status.CLOSED


def when(moment: datetime | None) -> str:
    return moment.strftime("%-d %b %Y, %H:%M UTC") if moment else ""


def _team_words(settings: Settings, ticket: Ticket) -> str:
    return agents.team_of(settings, ticket.queue).replace("-", " ").replace("_", " ").title()


def _agent_words(settings: Settings, directory: Directory, name: str) -> str:
    """How the pages name an agent: their shown name (and address, if configured), or
    the helpdesk's name when names are not shown."""
    portal = settings.portal
    agent = directory.agent(name)
    if not portal.show_agent_names or agent is None:
        return portal.name or settings.helpdesk.name
    return f"{agent.shown_name} <{agent.email}>" if portal.show_agent_addresses \
        else agent.shown_name


def status_words(settings: Settings, directory: Directory, ticket: Ticket) -> str:
    status = ticket.status
    if status == Status.PENDING:
        return "Waiting for your answer"
    if status == Status.RESOLVED:
        return "Resolved — tell us if it isn't"
    if status == Status.CLOSED:
        return "Closed"
    team = _team_words(settings, ticket)
    if ticket.assignee and settings.portal.show_agent_names and directory.agent(ticket.assignee):
        return f"Being worked on by {_agent_words(settings, directory, ticket.assignee)} " \
               f"from {team}"
    if status == Status.OPEN or ticket.assignee:
        return f"Being worked on by our {team} team"
    return "Received — we will get back to you soon"


def span_words(span: timedelta, business: bool) -> str:
    """1 hour -> "1 business hour" (business hours) or "1 hour"; whole days read as
    days around the clock, as hours in business hours (a business day has no fixed
    length)."""
    minutes = max(int(span.total_seconds()) // 60, 1)
    kind = "business " if business else ""
    def count(n: int, unit: str) -> str:
        return f"{n} {unit}{'' if n == 1 else 's'}"

    hours, rest = divmod(minutes, 60)
    if not business and minutes % 1440 == 0:
        return count(minutes // 1440, "day")
    if not hours:
        return count(rest, f"{kind}minute")
    return count(hours, f"{kind}hour") + (f" and {count(rest, 'minute')}" if rest else "")


def promise(settings: Settings, ticket: Ticket) -> str:
    """The SLA target that applies now, as a sentence; "" when none is configured or
    the ticket is no longer open."""
    if ticket.status not in OPEN_STATUSES or ticket.status == Status.PENDING:
        return ""
    sla = SlaContext(settings)
    policy = sla.policy_for(ticket)
    if policy is None:
        return ""
    answered = ticket.first_response_at is not None
    target = (policy.next_response or policy.first_response) if answered \
        else (policy.first_response or policy.next_response)
    business = sla.hours_for(ticket.queue) is not None
    if target is not None:
        return (f"We answer {ticket.priority}-priority requests within "
                f"{span_words(target, business)}.")
    if policy.resolution is not None:
        return (f"We aim to resolve {ticket.priority}-priority requests within "
                f"{span_words(policy.resolution, business)}.")
    return ""


def _entry(settings: Settings, directory: Directory, message: Message,
           customer: str) -> Entry:
    if message.direction == "out":
        author = message.from_name
        who = _agent_words(settings, directory, author) if author \
            else settings.portal.name or settings.helpdesk.name
        return Entry(who, True, when(message.sent_date or message.created_at),
                     message.body_text)
    who = "You" if message.from_addr.lower() == customer else \
        (message.from_name or message.from_addr)
    return Entry(who, False, when(message.created_at),
                 replytext.latest_reply(message.body_text))


def suggestions(session: Session, settings: Settings, ticket: Ticket) -> list[Suggestion]:
    """Published public articles that match the ticket's question, as the
    acknowledgement listed them (kb.suggest), while the ticket is open: each link is
    signed for this ticket, so "this solved my problem" on the article closes it and
    counts a deflection. None when the public knowledge base is off."""
    if not settings.kb.enabled or ticket.status not in OPEN_STATUSES:
        return []
    number = int(ticket.id or 0)
    return [Suggestion(s.article.title, kb_suggest.link(settings, number, int(s.article.id or 0)))
            for s in kb_suggest.for_ticket(session, settings, ticket)]


def linked(session: Session, settings: Settings, directory: Directory,
           ticket: Ticket) -> tuple[Linked, ...]:
    """The tickets linked to this one that are this customer's too: the one it was merged
    into, its parent, its children, related ones. Another customer's ticket is never
    named, whatever the agents linked."""
    number = int(ticket.id or 0)
    pairs: list[tuple[str, int]] = []
    if (survivor := ticket_ops.survivor(session, number)) != number:
        pairs.append(("Merged into", survivor))
    if (parent := ticket_ops.parent_of(session, number)) is not None:
        pairs.append(("Part of", parent))
    pairs += [("Includes", int(t.id or 0)) for t in ticket_ops.children_of(session, number)]
    pairs += [("Related", n) for n in ticket_ops.related_to(session, number)]
    found = []
    for relation, other_id in pairs:
        other = session.get(Ticket, other_id)
        if other is None or not ticket.contact_id or other.contact_id != ticket.contact_id:
            continue
        found.append(Linked(relation, f"{settings.helpdesk.ticket_prefix}-{other_id}",
                            other.subject or "(no subject)",
                            status_words(settings, directory, other),
                            portal_links.ticket_url(settings, other_id)))
    return tuple(found)


def build(session: Session, settings: Settings, directory: Directory,
          ticket: Ticket) -> TicketView:
    hd = settings.helpdesk
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    customer = contact.email.lower() if contact else ""
    entries = [_entry(settings, directory, m, customer)
               for m in queries.conversation(session, int(ticket.id or 0))]
    return TicketView(
        public_id=f"{hd.ticket_prefix}-{ticket.id}", subject=ticket.subject or "(no subject)",
        status=ticket.status, status_words=status_words(settings, directory, ticket),
        promise=promise(settings, ticket), entries=entries,
        suggestions=suggestions(session, settings, ticket), created=when(ticket.created_at),
        linked=linked(session, settings, directory, ticket))
