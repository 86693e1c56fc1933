"""A new ticket's channel, and the web form's hold on a request from an address that
has not confirmed it (rules/channel.py reads the envelope; [web_form] confirm decides).

An unconfirmed ticket is in the queues, flagged, but has no SLA clock
(schedule/sla.py), tells no agent, and its acknowledgement is the mail asking to
confirm (outgoing/to_customer.py); `confirm` lifts the hold once, on the visitor's
POST from the link's page.
"""

from __future__ import annotations

from sqlmodel import Session, col, func, select

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.rules import MailContext
from helpdesk.rules import channel as web_form
from helpdesk.store import tickets as store
from helpdesk.store.models import Ticket


def needs_confirming(session: Session, settings: Settings, ticket: Ticket) -> bool:
    """By [web_form] confirm; `unknown`: the sender has no confirmed ticket but this one
    (a request still waiting for its confirmation vouches for nothing)."""
    mode = settings.web_form.confirm
    if mode != "unknown":
        return mode == "always"
    earlier = session.exec(select(func.count()).select_from(Ticket).where(
        Ticket.contact_id == ticket.contact_id, col(Ticket.id) != ticket.id,
        col(Ticket.unconfirmed).is_(False))).one()
    return ticket.contact_id is None or not earlier


def of(ctx: MailContext) -> str:
    """The channel of a ticket `ctx`'s mail opens (mail, web, api), given to create_ticket."""
    return web_form.channel(ctx.envelope)


def record(session: Session, settings: Settings, ticket: Ticket, ctx: MailContext) -> None:
    """Set a ticket just opened by `ctx`'s mail with its channel (create_ticket's
    `channel`): from the form, the category the visitor chose (rules run after and may
    change it) and the confirmation hold."""
    if ticket.channel != "web":
        return
    chosen = web_form.category(ctx.envelope)
    if chosen and chosen in settings.web_form.categories:
        ticket.category = chosen
    if needs_confirming(session, settings, ticket):
        ticket.unconfirmed = True
        store.event(session, ticket, "unconfirmed", actor=ctx.mail.from_addr or "unknown",
                    detail="sent from the web form by an address that must confirm it "
                           f"([web_form] confirm = {settings.web_form.confirm})")


def confirm(session: Session, ticket: Ticket) -> bool:
    """Lift the hold; False when there was none (confirmed before: nothing happens)."""
    if not ticket.unconfirmed:
        return False
    ticket.unconfirmed = False
    ticket.confirmed_at = clock.now()  # the SLA clocks start here (schedule/sla.py)
    store.event(session, ticket, "confirmed", actor="customer",
                detail="the visitor followed the confirmation link")
    return True
