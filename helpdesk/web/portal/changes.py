"""The customer's two buttons: "solved for me" resolves an open ticket, "still broken"
reopens a resolved one. Each is a status change recorded in the ticket's history with
the customer's address as the actor, and the agents on the ticket (assignee, watchers;
else the team) are told, as they are of a customer's reply.
"""

from __future__ import annotations

from sqlmodel import Session

from helpdesk import clock
from helpdesk.agents import notify
from helpdesk.config.agents import Directory
from helpdesk.config.settings import Settings
from helpdesk.store import tickets as store
from helpdesk.store.models import Contact, Status, Ticket
from helpdesk.web.portal.view import OPEN_STATUSES


def customer_of(session: Session, ticket: Ticket) -> str:
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    return contact.email if contact else "the customer"


def solved(session: Session, settings: Settings, directory: Directory, ticket: Ticket) -> bool:
    """Resolve the ticket as its customer; False when it is not open."""
    if ticket.status not in OPEN_STATUSES:
        return False
    actor = customer_of(session, ticket)
    store.change(session, ticket, "status", Status.RESOLVED, actor=actor,
                 detail="the customer said it is solved, on the status page")
    if ticket.resolved_at is None and ticket.assignee:
        # the resolution is the assignee's work, confirmed by the customer
        store.credit(session, ticket, "resolution", ticket.assignee,
                     detail=f"confirmed by {actor} on the status page")
    ticket.resolved_at = clock.now()
    notice = notify.Notice("Customer says it is solved",
                           f"{actor} marked the ticket solved on the status page.",
                           author=actor)
    notify.follow_up(session, settings, directory, ticket, notice)
    return True


def still_broken(session: Session, settings: Settings, directory: Directory,
                 ticket: Ticket) -> bool:
    """Reopen a resolved ticket as its customer; False when it is not resolved."""
    if ticket.status != Status.RESOLVED:
        return False
    actor = customer_of(session, ticket)
    store.change(session, ticket, "status", Status.OPEN, actor=actor,
                 detail="the customer said it is still broken, on the status page")
    ticket.resolved_at = None
    notice = notify.Notice("reopened", f"{actor} says it is still broken (status page).",
                           author=actor)
    notify.follow_up(session, settings, directory, ticket, notice)
    return True
