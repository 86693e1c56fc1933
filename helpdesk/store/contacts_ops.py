"""Customers' organisations and the VIP flag.

An organisation is a mail domain ([ticket_ops] organisations names groups of them),
never a free-mail provider's ([ticket_ops] free_mail_domains): carol@bigcorp.com and
dave@eu.bigcorp.com are "bigcorp.com" (or the configured name), carol@gmail.com is
nobody's. Computed from the address, so nothing is stored and a config change applies
at once; `org_filter` is the one query for "all tickets of bigcorp" (the desk's queue
filter and `helpdesk contacts org`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, bindparam, exists, false, func, or_
from sqlmodel import Session, col, select

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.store.models import Contact, Ticket
from helpdesk.store.ops_models import ContactVip


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip().lower() if "@" in address else ""


def _within(domain: str, parent: str) -> bool:
    return domain == parent or domain.endswith("." + parent)


def organisation(settings: Settings, address: str) -> str:
    """The organisation of an address: its configured name, else its domain; "" for a
    free-mail address or none."""
    domain = _domain(address)
    if not domain:
        return ""
    cfg = settings.ticket_ops
    for name, domains in cfg.organisations.items():
        if any(_within(domain, d) for d in domains):
            return name
    if any(_within(domain, d) for d in cfg.free_mail_domains):
        return ""
    return domain


def domains_of(settings: Settings, name: str) -> tuple[str, ...]:
    """The domains of an organisation by name (a configured name, or a domain that is
    no free-mail provider's); () for none."""
    key = name.strip().lower().lstrip("@")
    cfg = settings.ticket_ops
    if key in cfg.organisations:
        return cfg.organisations[key]
    if "." in key and organisation(settings, f"x@{key}") == key:
        return (key,)
    return ()


def org_filter(settings: Settings, name: str) -> ColumnElement[bool]:
    """Tickets whose customer belongs to the organisation (false for none)."""
    return domains_filter(domains_of(settings, name))


def domains_filter(domains: tuple[str, ...]) -> ColumnElement[bool]:
    """Tickets whose customer's address is at one of `domains` or a subdomain."""
    if not domains:
        return false()
    email = col(Contact.email)
    matches = [m for d in domains for m in (email.endswith(f"@{d}", autoescape=True),
                                            email.endswith(f".{d}", autoescape=True))]
    return col(Ticket.contact_id).in_(select(Contact.id).where(or_(*matches)))


def tickets_of(session: Session, settings: Settings, name: str) -> list[Ticket]:
    stmt = select(Ticket).where(org_filter(settings, name)).order_by(col(Ticket.id))
    return list(session.exec(stmt).all())


def organisations(session: Session, settings: Settings) -> dict[str, int]:
    """Every organisation with its number of contacts, largest first."""
    counts: dict[str, int] = {}
    for email in session.exec(select(Contact.email)).all():
        org = organisation(settings, email)
        if org:
            counts[org] = counts.get(org, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


# -- the sender of a mail -----------------------------------------------------------------

@dataclass(frozen=True)
class Sender:
    """What the pipeline asks of a mail's sender, in one statement (`sender`)."""

    contact: Contact | None  # None: no contact has the address
    previous_tickets: int  # queries.previous_ticket_count
    vip: bool  # is_vip


_SENDER = select(
    Contact,
    select(func.count()).select_from(Ticket).where(col(Ticket.contact_id) == col(Contact.id))
    .scalar_subquery(),
    exists().where(col(ContactVip.contact_id) == col(Contact.id)),
).where(Contact.email == bindparam("email"))


def sender(session: Session, address: str) -> Sender:
    """The contact of `address`, how many tickets it has and whether it is a VIP."""
    row = session.execute(_SENDER, {"email": address.lower()}).first()
    if row is None:
        return Sender(None, 0, False)
    return Sender(row[0], int(row[1]), bool(row[2]) and bool(address))


# -- VIP -------------------------------------------------------------------------------

def is_vip(session: Session, address: str) -> bool:
    if not address:
        return False
    stmt = (select(ContactVip.contact_id)
            .join(Contact, col(Contact.id) == col(ContactVip.contact_id))
            .where(Contact.email == address.lower()))
    return session.exec(stmt).first() is not None


def set_vip(session: Session, contact: Contact, on: bool, actor: str) -> bool:
    """Flag or unflag; False when it already was so."""
    row = session.get(ContactVip, contact.id)
    if on and row is None:
        session.add(ContactVip(contact_id=int(contact.id or 0), set_by=actor, at=clock.now()))
        return True
    if not on and row is not None:
        session.delete(row)
        return True
    return False


def vips(session: Session) -> list[str]:
    stmt = (select(Contact.email).join(ContactVip, col(ContactVip.contact_id) == col(Contact.id))
            .order_by(col(Contact.email)))
    return list(session.exec(stmt).all())
