"""What the ticket page shows of the ticket operations (agents/ops_commands): where a
merged ticket went, what was merged into it (and until when an admin may undo it), its
parent, children and related tickets, and a warning when it is resolved while children
are still open. Read only; the page includes templates/web/ticket_ops.html.j2 with
this. Another ticket's subject is shown only to an agent who may see that ticket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.store import contacts_ops, queries, ticket_ops
from helpdesk.store.models import Contact, Ticket
from helpdesk.web import access, auth


@dataclass(frozen=True)
class Other:
    number: int
    public_id: str
    subject: str  # "" when the agent may not see that ticket
    status: str
    open: bool


def _other(session: Session, settings: Settings, who: auth.SignedIn, number: int) -> Other:
    prefix = settings.helpdesk.ticket_prefix
    seen = access.visible_ticket(session, settings, who, number)
    ticket = seen or queries.ticket(session, number)
    status = ticket.status if ticket is not None else ""
    return Other(number, f"{prefix}-{number}", seen.subject if seen else "", status,
                 status in ticket_ops.OPEN)


def context(session: Session, settings: Settings, who: auth.SignedIn,
            ticket: Ticket) -> dict[str, Any]:
    number = int(ticket.id or 0)
    customer = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    window = settings.ticket_ops.unmerge_window
    merge = ticket_ops.active_merge(session, number)
    parent = ticket_ops.parent_of(session, number)
    children = [_other(session, settings, who, int(c.id or 0))
                for c in ticket_ops.children_of(session, number)]
    merged_here = [{"ticket": _other(session, settings, who, m.source_id), "by": m.actor,
                    "at": m.at, "undo_until": ticket_ops.undo_deadline(m, window)}
                   for m in ticket_ops.merged_into(session, number)]
    return {
        "merged_into": _other(session, settings, who, merge.target_id) if merge else None,
        "merge": merge,
        "merged_here": merged_here,
        "parent": _other(session, settings, who, parent) if parent else None,
        "children": children,
        "related": [_other(session, settings, who, n)
                    for n in ticket_ops.related_to(session, number)],
        "open_children": [c for c in children if c.open]
        if ticket.status not in ticket_ops.OPEN else [],
        "may_unmerge": who.has_role("admin"),
        "organisation": contacts_ops.organisation(settings, customer.email) if customer else "",
        "vip": contacts_ops.is_vip(session, customer.email) if customer else False,
        "now": clock.now(),
    }
