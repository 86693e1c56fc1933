"""Webhook events, written in the transaction of the change they tell of.

store/tickets.py `event` (every history event) and staff.store_outgoing (every reply we
send a customer) call `from_history` / `replied_by_agent`; whichever door made the change
(mail, desk, CLI, API, scheduler), the event row commits with it or not at all, when
some configured hook is sent its kind (`wanted`: none are written without hooks). The
hooks' deliveries are made from these rows later (outgoing/hooks.py), so a webhook
receiver that is down delays nothing here.

The payload is a snapshot of the ticket as the change left it; mail text is not in it
(a receiver that wants it asks the API, with a token that may see the ticket).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from helpdesk import clock
from helpdesk.store import db, inserts
from helpdesk.store.api_models import HookEvent
from helpdesk.store.models import Ticket

CREATED, REPLIED, STATUS = "ticket.created", "ticket.replied", "ticket.status_changed"


def _ticket(ticket: Ticket) -> dict[str, Any]:
    return {"id": ticket.id, "subject": ticket.subject, "status": ticket.status,
            "priority": ticket.priority, "queue": ticket.queue, "assignee": ticket.assignee,
            "category": ticket.category, "tags": list(ticket.tags)}


def wanted(session: Session, kind: str) -> bool:
    """Whether some configured hook is sent `kind` (the engine's db.HOOK_EVENTS_OPTION;
    an engine made without it records every kind). An event no hook wants would be
    recorded only for outgoing/hooks.py to delete it unsent."""
    kinds = session.get_bind().get_execution_options().get(db.HOOK_EVENTS_OPTION)
    return kinds is None or kind in kinds


def record(session: Session, ticket: Ticket, kind: str, **details: Any) -> None:
    """Write the event at once, a plain insert (nothing needs the row as an object),
    when a hook wants it."""
    if not wanted(session, kind):
        return
    at = clock.now()
    inserts.insert(session, HookEvent, inserts.values(
        HookEvent, ticket_id=int(ticket.id or 0), kind=kind, at=at,
        payload={"event": kind, "at": at.isoformat(), "ticket": _ticket(ticket), **details}))


def from_history(session: Session, ticket: Ticket, kind: str, *, actor: str,
                 field: str = "", old: str = "", new: str = "") -> None:
    """The webhook event a history event (store.tickets.event's arguments) is, if any:
    a new ticket, a customer's reply, a change of status."""
    if kind == "created":
        record(session, ticket, CREATED, actor=actor)
    elif kind == "reply":
        record(session, ticket, REPLIED, by="customer", actor=actor)
    elif kind == "change" and field == "status":
        record(session, ticket, STATUS, actor=actor, old=old, new=new)


def replied_by_agent(session: Session, ticket: Ticket, author: str) -> None:
    record(session, ticket, REPLIED, by="agent", actor=author)
