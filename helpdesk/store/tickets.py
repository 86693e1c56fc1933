"""Writes: contacts, tickets, messages, attachments and history events.

Every function works inside the caller's session; the caller owns the
transaction, so a ticket, its message and its outbox rows commit together.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlmodel import Session

from helpdesk import clock
from helpdesk.mail.parse import ParsedMail
from helpdesk.rules import AssignRequest, assign
from helpdesk.store import blobs, hook_events, queries, search
from helpdesk.store.models import Attachment, Contact, Event, Message, Ticket, msgid_key


def dedupe_key(mail: ParsedMail) -> str:
    """Message-ID together with the content hash: a reused Message-ID loses nothing."""
    return hashlib.sha256(f"{mail.message_id}\0{mail.content_hash}".encode()).hexdigest()


def contact_for(session: Session, email_addr: str, name: str = "") -> Contact:
    contact = queries.contact_by_email(session, email_addr)
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


def event(session: Session, ticket: Ticket, kind: str, *, actor: str = "system",
          field: str = "", old: str = "", new: str = "", detail: str = "") -> Event:
    ev = Event(ticket_id=ticket.id, kind=kind, actor=actor, field=field, old=old, new=new,
               detail=detail, at=clock.now())
    session.add(ev)
    hook_events.from_history(session, ticket, ev)  # a webhook event, in this transaction
    return ev


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
                   raw: bytes, *, route: str, threaded_by: str) -> Message:
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
    ticket.updated_at = clock.now()
    search.index_message(session, message.id)  # searchable exactly when it commits
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
