"""Links mailed from the portal, through the outbox like all our mail (never shown on
the page: whoever types an address learns nothing about it): a customer's list of
tickets, asked for by address, and a fresh link to a ticket whose link expired, sent
to the ticket's customer only.

Both are bounded: [portal] links_per_hour per recipient (counted in the outbox, so
every daemon sharing the database counts the same) and ten times that per client IP
address (counted in memory: a restart forgets, which only ever allows more asks).
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, func, select

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.outgoing import compose as mailout
from helpdesk.outgoing import portal_links
from helpdesk.store import attempts, queries
from helpdesk.store.models import Contact, Ticket

LIST_KIND = "portal-list"
LINK_KIND = "portal-link"
MAX_ADDRESS = 320


def client_allowed(session: Session, settings: Settings, client: str) -> bool:
    """Whether a client IP may ask for another mailed link this hour (whatever the
    address: mail goes only to a ticket's customer, this bounds the asking)."""
    return attempts.allow(session, settings,
                          [("portal-client", client, settings.portal.links_per_hour * 10)],
                          attempts.HOUR, count_refused=False)


def clean_address(text: str) -> str:
    """The address typed into the form, lowercased; "" for anything that is none."""
    address = text.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or len(address) > MAX_ADDRESS \
            or any(c.isspace() or c in "<>,;\"" for c in address):
        return ""
    return address


def _room(session: Session, settings: Settings, address: str, kind: str) -> bool:
    since = clock.now() - timedelta(hours=1)
    return queries.mails_to_since(session, address, since, [kind]) < \
        settings.portal.links_per_hour


def _send(session: Session, settings: Settings, address: str, template: str,
          context: dict[str, object], kind: str, ticket_id: int | None) -> None:
    hd = settings.helpdesk
    subject, text, html = mailout.render(
        settings, template, {"helpdesk_name": settings.portal.name or hd.name, **context})
    msg = mailout.build(settings, to=[address], subject=subject, text=text, html=html,
                        automatic=True, id_hint="portal")
    mailout.queue(session, msg, kind=kind, ticket_id=ticket_id, mail_from="", automatic=True)


def mail_list(session: Session, settings: Settings, address: str, base: str) -> bool:
    """Mail `address` the link to its tickets, if it has any and is not over its limit;
    whether a mail was queued (the page never says)."""
    contact = queries.contact_by_email(session, address)
    if contact is None:
        return False
    count = session.exec(select(func.count()).select_from(Ticket)
                         .where(Ticket.contact_id == contact.id)).one()
    if not count or not _room(session, settings, contact.email, LIST_KIND):
        return False
    url = f"{base}/portal/tickets/{portal_links.list_token(settings, contact.email)}"
    _send(session, settings, contact.email, "portal/list_link",
          {"url": url, "days": settings.portal.link_valid_days}, LIST_KIND, None)
    return True


def mail_ticket_link(session: Session, settings: Settings, ticket: Ticket, base: str) -> bool:
    """Mail the ticket's customer a fresh link to its page (an old one expired)."""
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    if contact is None or not _room(session, settings, contact.email, LINK_KIND):
        return False
    hd = settings.helpdesk
    url = f"{base}/portal/ticket/{portal_links.ticket_token(settings, int(ticket.id or 0))}"
    _send(session, settings, contact.email, "portal/ticket_link",
          {"url": url, "days": settings.portal.link_valid_days,
           "ticket_id": f"{hd.ticket_prefix}-{ticket.id}", "subject": ticket.subject},
          LINK_KIND, ticket.id)
    return True
