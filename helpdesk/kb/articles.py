"""Articles: drafted from a ticket, edited, published by a lead. Every write reindexes
the article (kb.search) in the caller's transaction and flags the personal data
left in its text (kb.personal).

The draft of a ticket takes the question as the customer put it (the subject and their
first mail, without quotes and signature: mail.replytext) and the resolution as the
agent wrote it (the text of the reply with #kb, else the ticket's last reply from an
agent), the ticket's category and tags; internal until someone makes it public.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session, col, select

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.errors import HelpdeskError
from helpdesk.kb import personal
from helpdesk.kb import search as kb_search
from helpdesk.mail import replytext
from helpdesk.store import tickets as store
from helpdesk.store.kb_models import KbArticle
from helpdesk.store.models import Contact, Message, Ticket

VISIBILITIES = ("internal", "public")
STATUSES = ("draft", "published")
MAX_TITLE = 300


class NotPublishable(HelpdeskError):
    """Publishing refused; the message says why (for the lead, by mail or on the page)."""


@dataclass(frozen=True)
class Fields:
    """What an editor (the desk's form, an imported file) sets on an article."""

    title: str
    question: str
    resolution: str
    category: str = ""
    tags: tuple[str, ...] = ()
    visibility: str = "internal"


def first_customer_message(session: Session, ticket_id: int) -> Message | None:
    return session.exec(select(Message).where(
        Message.ticket_id == ticket_id, Message.direction == "in",
        col(Message.internal).is_(False)).order_by(Message.id)).first()


def last_agent_reply(session: Session, ticket_id: int) -> str:
    """The text of the newest reply an agent sent the customer, "" when none."""
    found = session.exec(select(Message).where(
        Message.ticket_id == ticket_id, Message.direction == "out",
        col(Message.internal).is_(False)).order_by(col(Message.id).desc())).first()
    return found.body_text.strip() if found else ""


def people(session: Session, ticket: Ticket, extra: Iterable[str] = ()) -> list[str]:
    """Names whose mention in an article is personal data: the customer's, the names the
    ticket's mails were signed with, and `extra` (the agents')."""
    names = [*extra]
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    if contact and contact.name:
        names.append(contact.name)
    names += [n for (n,) in session.execute(
        select(Message.from_name).where(Message.ticket_id == ticket.id).distinct()) if n]
    return list(dict.fromkeys(n for n in names if n))


def flag(settings: Settings, article: KbArticle, names: Iterable[str] = ()) -> None:
    """Find the personal data in the article's text (again, after an edit). The names
    of the ticket's people are kept from the draft's first flags, so an edit still
    finds them."""
    known = [f["text"] for f in article.flags if f["kind"] == "name"]
    text = "\n".join([article.title, article.question, article.resolution])
    article.flags = personal.find(text, names=[*names, *known],
                                  patterns=settings.kb.personal_data_patterns)


def draft_from_ticket(session: Session, settings: Settings, ticket: Ticket, *, agent: str,
                      resolution: str = "", agent_names: Iterable[str] = ()) -> KbArticle:
    """A new draft from `ticket` (see the module's docstring), recorded in its history."""
    number = int(ticket.id or 0)
    first = first_customer_message(session, number)
    body = replytext.latest_reply(first.body_text) if first else ""
    article = KbArticle(
        title=ticket.subject.strip()[:MAX_TITLE] or f"Ticket {number}",
        question="\n\n".join(p for p in (ticket.subject.strip(), body.strip()) if p),
        resolution=resolution.strip() or last_agent_reply(session, number),
        category=ticket.category, tags=sorted(ticket.tags), ticket_id=number,
        created_by=agent, created_at=clock.now(), updated_at=clock.now())
    flag(settings, article, people(session, ticket, agent_names))
    session.add(article)
    session.flush()
    kb_search.index_article(session, article.id)
    flagged = f", {len(article.flags)} personal data flagged" if article.flags else ""
    store.event(session, ticket, "kb-draft", actor=agent,
                detail=f"KB article {article.id} drafted{flagged}")
    return article


def clean_tags(text: str) -> tuple[str, ...]:
    return tuple(sorted({t.strip().lower()[:100] for t in text.replace(",", " ").split()
                         if t.strip()}))


def save(session: Session, settings: Settings, article: KbArticle, fields: Fields) -> None:
    """Store an edit; the flags are found again in the new text."""
    if fields.visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {', '.join(VISIBILITIES)}")
    article.title = fields.title.strip()[:MAX_TITLE]
    article.question = fields.question.strip()
    article.resolution = fields.resolution.strip()
    article.category = fields.category.strip()[:100]
    article.tags = list(fields.tags)
    article.visibility = fields.visibility
    article.updated_at = clock.now()
    # the ticket's people again: a name removed at the last save must be found if it
    # comes back
    ticket = session.get(Ticket, article.ticket_id) if article.ticket_id else None
    flag(settings, article, people(session, ticket) if ticket else ())
    session.add(article)
    kb_search.index_article(session, article.id)


def publish(session: Session, article: KbArticle, *, lead: str) -> None:
    """Publish a draft (NotPublishable while personal data is flagged or it is empty);
    recorded on its ticket when it has one."""
    if article.status == "published":
        raise NotPublishable(f"KB article {article.id} is already published")
    if article.flags:
        shown = ", ".join(f"{f['kind']} {f['text']!r}" for f in article.flags[:5])
        raise NotPublishable(f"KB article {article.id} still has personal data: {shown}; "
                             "remove it in the desk's KB page first")
    if not (article.title.strip() and article.resolution.strip()):
        raise NotPublishable(f"KB article {article.id} has no title or no resolution")
    article.status, article.published_by = "published", lead
    article.published_at = article.updated_at = clock.now()
    session.add(article)
    kb_search.index_article(session, article.id)
    ticket = session.get(Ticket, article.ticket_id) if article.ticket_id else None
    if ticket is not None:
        store.event(session, ticket, "kb-published", actor=lead,
                    detail=f"KB article {article.id} published ({article.visibility})")


def drafts_of(session: Session, ticket_id: int) -> list[KbArticle]:
    return list(session.exec(select(KbArticle).where(
        KbArticle.ticket_id == ticket_id, KbArticle.status == "draft")
        .order_by(col(KbArticle.id).desc())).all())


def listing(session: Session, *, status: str | None = None, public_only: bool = False,
            category: str | None = None) -> list[KbArticle]:
    stmt = select(KbArticle)
    if status:
        stmt = stmt.where(KbArticle.status == status)
    if public_only:
        stmt = stmt.where(KbArticle.visibility == "public")
    if category is not None:
        stmt = stmt.where(KbArticle.category == category)
    return list(session.exec(stmt.order_by(col(KbArticle.id).desc())).all())


def public(session: Session, article_id: int) -> KbArticle | None:
    """The article if the public may see it (published and public), else None."""
    article = session.get(KbArticle, article_id)
    if article and article.status == "published" and article.visibility == "public":
        return article
    return None
