"""What customers tell the public pages: "did this help?" (counted per article) and
"this solved my problem" from a suggested article's signed link, which resolves the
ticket (a history event naming the customer and the article) and counts one
deflection for the article, once per ticket whatever is pressed again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, update
from sqlmodel import Session, col

from helpdesk import clock
from helpdesk.store import tickets as store
from helpdesk.store.kb_models import KbArticle, KbDeflection
from helpdesk.store.models import Contact, Status, Ticket


def vote(session: Session, article_id: int, helped: bool, before: bool | None = None) -> None:
    """One visitor's answer to "did this help?" in one UPDATE (no lost counts when many
    answer at once); `before`: their earlier answer, which this one replaces (each
    visitor counts once, with their latest answer)."""
    column = KbArticle.helpful if helped else KbArticle.unhelpful
    values: dict[Any, Any] = {column: col(column) + 1}
    if before is not None and before != helped:
        other = KbArticle.unhelpful if helped else KbArticle.helpful
        values[other] = case((col(other) > 0, col(other) - 1), else_=0)
    elif before is not None:
        return  # the same answer again
    session.execute(update(KbArticle).where(col(KbArticle.id) == article_id).values(values))


def solved(session: Session, ticket_id: int, article: KbArticle) -> str:
    """The customer says `article` solved ticket `ticket_id`: "resolved", "already"
    (counted before: nothing more happens) or "unknown" (no such ticket)."""
    # a write first, as the desk's actions do: SQLite takes its write lock, PostgreSQL
    # the row's, so two presses at once cannot both find no deflection and insert one
    session.execute(update(Ticket).where(col(Ticket.id) == ticket_id)
                    .values(updated_at=col(Ticket.updated_at)))
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        return "unknown"
    if session.get(KbDeflection, ticket_id) is not None:
        return "already"
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    customer = contact.email if contact else "customer"
    session.add(KbDeflection(ticket_id=ticket_id, article_id=int(article.id or 0),
                             customer=customer, at=clock.now()))
    session.execute(update(KbArticle).where(col(KbArticle.id) == article.id)
                    .values(deflections=col(KbArticle.deflections) + 1))
    detail = f"solved by KB article {article.id} ({article.title}), said {customer}"
    if ticket.status in (Status.RESOLVED, Status.CLOSED):
        store.event(session, ticket, "kb-deflection", actor=customer, detail=detail)
        return "resolved"
    store.change(session, ticket, "status", Status.RESOLVED, actor=customer, detail=detail)
    store.event(session, ticket, "kb-deflection", actor=customer, detail=detail)
    ticket.resolved_at = clock.now()
    return "resolved"
