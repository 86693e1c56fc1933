"""Stale tickets ([stale]): a pending ticket the customer has not answered for
`pending_remind` gets a reminder to the customer; `pending_resolve` after that
it is resolved with a note. A ticket resolved for `resolved_close` is closed.
A web form's request never confirmed for [web_form] unconfirmed_close is closed,
telling nobody (it would be mail to an address that never asked for it).

Step keys carry the moment the waiting began, so a ticket that goes pending
again later gets a fresh reminder, but one waiting period never gets two.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from helpdesk.outgoing import portal_links
from helpdesk.schedule.runtime import (
    ACTOR,
    Runtime,
    Step,
    base_context,
    customer_of,
    history,
    send,
)
from helpdesk.schedule.sla import status_changes
from helpdesk.store import staff
from helpdesk.store import tickets as store
from helpdesk.store.models import Status, Ticket, TicketStep


def _stamp(at: datetime) -> str:
    return at.strftime("%Y%m%dT%H%M%S")


def _entered(session: Session, ticket: Ticket, status: str) -> datetime:
    """When the ticket last entered `status` (its history), else its last update."""
    times = [at for at, _, new in status_changes(session, ticket.id or 0) if new == status]
    return times[-1] if times else ticket.updated_at


def plan(rt: Runtime, session: Session, ticket: Ticket,
         done: dict[str, TicketStep]) -> list[Step]:
    cfg = rt.settings.stale
    expire = rt.settings.web_form.unconfirmed_close
    if ticket.unconfirmed and expire and ticket.status != Status.CLOSED:
        return [Step(f"stale:unconfirmed:{_stamp(ticket.created_at)}",
                     ticket.created_at + expire, "expire")]
    if ticket.status == Status.PENDING and (cfg.pending_remind or cfg.pending_resolve):
        return _pending_steps(rt, session, ticket, done)
    if ticket.status == Status.RESOLVED and cfg.resolved_close:
        since = ticket.resolved_at or _entered(session, ticket, Status.RESOLVED)
        return [Step(f"stale:close:{_stamp(since)}", since + cfg.resolved_close, "close")]
    return []


def _pending_steps(rt: Runtime, session: Session, ticket: Ticket,
                   done: dict[str, TicketStep]) -> list[Step]:
    cfg = rt.settings.stale
    since = _entered(session, ticket, Status.PENDING)
    last_in = staff.last_customer_message(session, ticket.id or 0)
    if last_in is not None and last_in.created_at > since:
        since = last_in.created_at
    remind_key = f"stale:remind:{_stamp(since)}"
    steps = []
    if cfg.pending_remind:
        steps.append(Step(remind_key, since + cfg.pending_remind, "remind"))
    # a resolution waiting for the lead's review is the lead's to decide, not the clock's
    if cfg.pending_resolve and staff.pending_review(session, ticket.id or 0) is None:
        reminded = done.get(remind_key)
        if reminded is not None or not cfg.pending_remind:
            start = reminded.at if reminded is not None else since
            steps.append(Step(f"stale:resolve:{_stamp(since)}", start + cfg.pending_resolve,
                              "resolve"))
    return steps


def remind(rt: Runtime, session: Session, ticket: Ticket, step: Step) -> str:
    contact = customer_of(session, ticket)
    if contact is None:
        history(session, ticket, "stale-reminder", "no customer address to remind")
        return "no customer to remind"
    context = {**base_context(rt, session, ticket),
               "status_url": portal_links.ticket_url(rt.settings, ticket.id)}
    send(rt, session, ticket, "stale_reminder", [contact.email], context,
         kind="stale-reminder", to_customer=True)
    history(session, ticket, "stale-reminder", f"reminded {contact.email}")
    return f"reminded {contact.email}"


def resolve(rt: Runtime, session: Session, ticket: Ticket, step: Step) -> str:
    note = "resolved: no reply from the customer after the reminder"
    store.change(session, ticket, "status", Status.RESOLVED, actor=ACTOR, detail=note)
    ticket.resolved_at = rt.now
    history(session, ticket, "note", note)
    return note


def close(rt: Runtime, session: Session, ticket: Ticket, step: Step) -> str:
    store.change(session, ticket, "status", Status.CLOSED, actor=ACTOR,
                 detail="closed: resolved long enough")
    ticket.closed_at = rt.now
    return "closed"


def expire(rt: Runtime, session: Session, ticket: Ticket, step: Step) -> str:
    note = "closed: the request from the web form was never confirmed"
    history(session, ticket, "unconfirmed-expired", note)
    store.change(session, ticket, "status", Status.CLOSED, actor=ACTOR, detail=note)
    ticket.closed_at = rt.now
    return note


ACTIONS = {"remind": remind, "resolve": resolve, "close": close, "expire": expire}
