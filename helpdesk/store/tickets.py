"""Writes: contacts, tickets, messages, attachments and history events.

Every function works inside the caller's session; the caller owns the
transaction, so a ticket, its message and its outbox rows commit together.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import Session

from helpdesk import clock
from helpdesk.mail.parse import ParsedMail
from helpdesk.rules import AssignRequest, assign
from helpdesk.store import blobs, hook_events, queries, search
from helpdesk.store.models import Attachment, Contact, Event, Message, Ticket, msgid_key


def dedupe_key(mail: ParsedMail) -> str:
    """Message-ID together with the content hash: a reused Message-ID loses nothing."""
    return hashlib.sha256(f"{mail.message_id}\0{mail.content_hash}".encode()).hexdigest()


# `contact_for`'s `known` when the caller has not looked the address up
NOT_LOOKED_UP = queries.NOT_LOOKED_UP


def contact_for(session: Session, email_addr: str, name: str = "",
                known: Contact | None = NOT_LOOKED_UP) -> Contact:
    """The contact of an address, made if there is none. `known`: what the caller found
    for the address earlier in this transaction (contacts_ops.sender; None: nobody), so
    that it is not looked up twice."""
    contact = queries.contact_by_email(session, email_addr) if known is NOT_LOOKED_UP \
        else known
    if contact is None:
        contact = Contact(email=email_addr.lower(), name=name)
        session.add(contact)
        session.flush()
    elif name and not contact.name:
        contact.name = name
    return contact


def create_ticket(session: Session, *, subject: str, contact: Contact | None, queue: str,
                  linked_ticket_id: int | None = None) -> Ticket:
    ticket = Ticket(
        subject=subject or "(no subject)",
        contact_id=contact.id if contact else None,
        queue=queue,
        linked_ticket_id=linked_ticket_id,
    )
    session.add(ticket)
    session.flush()
    return ticket


_INSERT_EVENT = insert(Event.__table__)  # type: ignore[attr-defined]  # built once: cached


def event(session: Session, ticket: Ticket, kind: str, *, actor: str = "system",
          field: str = "", old: str = "", new: str = "", detail: str = "") -> None:
    """Record a history event (and its webhook event, if any), written at once: a plain
    insert, since nothing needs the row as an object (an ORM object costs its
    construction and a flush, several times the insert)."""
    session.connection().execute(_INSERT_EVENT, {
        "ticket_id": ticket.id, "kind": kind, "actor": actor, "field": field, "old": old,
        "new": new, "detail": detail, "at": clock.now()})
    # a webhook event, in this transaction
    hook_events.from_history(session, ticket, kind, actor=actor, field=field, old=old,
                             new=new)


def credit(session: Session, ticket: Ticket, figure: str, agent: str, detail: str = "") -> None:
    """Record that `figure` ("first_response", "resolution") of this ticket is `agent`'s
    work: the author of the reply, not whoever released it (a lead approving a review)."""
    event(session, ticket, queries.CREDIT, actor=agent, field=figure, detail=detail)


def change(session: Session, ticket: Ticket, field: str, new: str, *, actor: str,
           detail: str = "") -> bool:
    """Set one ticket field and record it; returns False when nothing changed."""
    old = getattr(ticket, field)
    if old == new:
        return False
    setattr(ticket, field, new)
    ticket.updated_at = clock.now()
    event(session, ticket, "change", actor=actor, field=field, old=str(old), new=str(new),
          detail=detail)
    return True


def store_incoming(session: Session, data_dir: Path, ticket: Ticket, mail: ParsedMail,
                   raw: bytes, *, route: str, threaded_by: str,
                   ticket_is_new: bool = False) -> Message:
    """Store an incoming mail on `ticket`. `ticket_is_new`: the ticket was made for this
    mail (in this transaction), so its updated_at is already now: no second write."""
    stored = blobs.for_session(session, data_dir)
    raw_path = stored.put("raw", raw, ".eml")
    message = Message(
        ticket_id=ticket.id,
        direction="in",
        message_id=mail.message_id,
        msgid_key=msgid_key(mail.message_id) if mail.message_id else "",
        dedupe_key=dedupe_key(mail),
        content_hash=mail.content_hash,
        in_reply_to=" ".join(mail.in_reply_to),
        references=" ".join(mail.references),
        from_addr=mail.from_addr,
        from_name=mail.from_name,
        to=list(mail.to),
        cc=list(mail.cc),
        subject=mail.subject,
        body_text=mail.body_text,
        body_html=mail.body_html,
        raw_path=raw_path,
        route=route,
        threaded_by=threaded_by,
        defects=list(mail.defects),
        size=mail.size,
        sent_date=mail.date,
    )
    session.add(message)
    session.flush()
    for att in mail.attachments:
        sha = stored.put_attachment(att.data)
        session.add(Attachment(message_id=message.id, filename=att.filename,
                               content_type=att.content_type, size=att.size, sha256=sha,
                               inline=att.inline, content_id=att.content_id))
    if not ticket_is_new:
        ticket.updated_at = clock.now()
    search.index_message(session, message.id, new=True)  # searchable exactly when it commits
    return message


def resolve_assignee(session: Session, request: AssignRequest) -> str:
    """An agent name for a rule's assignment: named, or picked from a team by strategy."""
    if request.agent:
        return request.agent
    members = list(request.members)
    if not members:
        return ""
    return assign.pick(request.strategy, members,
                       last_assigned=queries.last_assignee_among(session, members),
                       open_counts=queries.open_ticket_counts(session, members))


def attachments_of(session: Session, message_id: int) -> list[Attachment]:
    from sqlmodel import select

    return list(session.exec(select(Attachment).where(Attachment.message_id == message_id)))
