"""Tickets and quarantine entries as plain data, for the CLI (and later the HTTP API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.store import queries, staff, ticket_ops
from helpdesk.store.models import Contact, Message, Quarantine, Ticket
from helpdesk.store.tickets import attachments_of


def iso(value: datetime | None) -> str | None:
    """A moment as JSON wants it; None stays None (never happened, or not yet)."""
    return value.isoformat() if value else None


def ticket_summary(session: Session, ticket: Ticket, prefix: str) -> dict[str, Any]:
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    return {
        "id": f"{prefix}-{ticket.id}",
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "category": ticket.category,
        "queue": ticket.queue,
        "assignee": ticket.assignee,
        "tags": list(ticket.tags),
        "spam": ticket.spam,
        "customer": contact.email if contact else "",
        "customer_name": contact.name if contact else "",
        "linked": f"{prefix}-{ticket.linked_ticket_id}" if ticket.linked_ticket_id else None,
        "created": iso(ticket.created_at),
        "updated": iso(ticket.updated_at),
        "first_response": iso(ticket.first_response_at),
        "resolved": iso(ticket.resolved_at),
        "closed": iso(ticket.closed_at),
    }


def ticket_detail(session: Session, ticket: Ticket, prefix: str,
                  settings: Settings | None = None) -> dict[str, Any]:
    data = ticket_summary(session, ticket, prefix)
    if settings is not None:  # SLA due times need the policies and business hours
        from helpdesk.schedule.sla import describe

        data["sla"] = describe(session, settings, ticket, clock.now())
    reviews = {r.held_message_id: r.status for r in staff.reviews(session, ticket.id or 0)
               if r.held_message_id is not None}
    data["messages"] = [
        {
            "number": m.id,  # as the desk shows it (#12); `tickets split` takes it
            "message_id": m.message_id,
            "direction": m.direction,
            "internal": m.internal,
            "from": m.from_addr,
            "from_name": m.from_name,
            # internal: an agent's own mail or note, or an automatic reply (out-of-office);
            # an internal "out" is a reply held for review, or one its review stopped
            "visibility": _visibility(m, reviews.get(m.id)),
            "to": list(m.to),
            "cc": list(m.cc),
            "subject": m.subject,
            "body_text": m.body_text,
            "threaded_by": m.threaded_by,
            "route": m.route,
            "defects": list(m.defects),
            "raw_path": m.raw_path,
            "created": iso(m.created_at),
            "attachments": [
                {"filename": a.filename, "content_type": a.content_type, "size": a.size,
                 "sha256": a.sha256, "inline": a.inline}
                for a in attachments_of(session, m.id)  # type: ignore[arg-type]
            ],
        }
        for m in queries.messages(session, ticket.id)  # type: ignore[arg-type]
    ]
    data["watchers"] = staff.watchers(session, ticket.id)  # type: ignore[arg-type]
    # "linked" is the ticket this one follows up; these follow up this one
    data["followed_by"] = [f"{prefix}-{n}" for n in queries.followers(session, int(ticket.id or 0))]
    data["events"] = [
        {"at": iso(e.at), "actor": e.actor, "kind": e.kind, "field": e.field, "old": e.old,
         "new": e.new, "detail": e.detail}
        for e in queries.events(session, ticket.id)  # type: ignore[arg-type]
    ]
    data["links"] = ticket_ops.links(session, int(ticket.id or 0), prefix)
    return data


HELD = {"rejected": "not sent: review rejected", "withdrawn": "not sent: review withdrawn"}


# the visibilities of what the customer wrote or was sent (the rest is the staff's)
CUSTOMER_SIDE = ("customer", "sent to customer")


def _visibility(m: Message, review: str | None) -> str:
    if m.direction == "out":
        return HELD.get(review or "", "held for review") if m.internal else CUSTOMER_SIDE[1]
    return "internal" if m.internal else CUSTOMER_SIDE[0]


def quarantine_entry(row: Quarantine) -> dict[str, Any]:
    return {
        "id": row.id,
        "created": iso(row.created_at),
        "reason": row.reason,
        "route": row.route,
        "mail_from": row.mail_from,
        "rcpt_tos": list(row.rcpt_tos),
        "size": row.size,
        "status": row.status,
        "raw_path": row.raw_path,
    }
