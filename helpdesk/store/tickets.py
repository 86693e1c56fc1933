"""Writes: contacts, tickets, messages, attachments and history events.

Every function works inside the caller's session; the caller owns the
transaction, so a ticket, its message and its outbox rows commit together.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlmodel import Session

from helpdesk import clock
from helpdesk.mail.parse import ParsedMail
from helpdesk.rules import AssignRequest, assign
from helpdesk.store import blobs, hook_events, inserts, queries, search
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
        row = inserts.values(Contact, email=email_addr.lower(), name=name)
        contact = inserts.attach(session, Contact, inserts.insert(session, Contact, row), row)
    elif name and not contact.name:
        contact.name = name
    return contact


def create_ticket(session: Session, *, subject: str, contact: Contact | None, queue: str,
                  linked_ticket_id: int | None = None, channel: str = "mail",
                  internal: bool = False) -> Ticket:
    """A new ticket, written at once (its id is needed for its history)."""
    row = inserts.values(Ticket, subject=subject or "(no subject)",
                         contact_id=contact.id if contact else None, queue=queue,
                         linked_ticket_id=linked_ticket_id, channel=channel,
                         internal=internal)
    return inserts.attach(session, Ticket, inserts.insert(session, Ticket, row), row)


def event(session: Session, ticket: Ticket, kind: str, *, actor: str = "system",
          field: str = "", old: str = "", new: str = "", detail: str = "") -> None:
    """Record a history event (and its webhook event, if any), written at once: a plain
    insert, since nothing needs the row as an object (an ORM object costs its
    construction and a flush, several times the insert)."""
    inserts.insert(session, Event, inserts.values(
        Event, ticket_id=ticket.id, kind=kind, actor=actor, field=field, old=old, new=new,
        detail=detail))
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


def _incoming_row(stored: blobs.BlobStore, ticket: Ticket, mail: ParsedMail, raw: bytes,
                  route: str, threaded_by: str) -> dict[str, Any]:
    """The message row of an incoming mail (its original stored first)."""
    return inserts.values(
        Message,
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
        raw_path=stored.put("raw", raw, ".eml"),
        route=route,
        threaded_by=threaded_by,
        defects=list(mail.defects),
        size=mail.size,
        sent_date=mail.date,
    )


def _incoming_rest(session: Session, stored: blobs.BlobStore, ticket: Ticket,
                   mail: ParsedMail, message_id: int, ticket_is_new: bool) -> None:
    """What follows the message row: its attachments, the ticket's updated_at, the search
    row. The attachments are plain inserts (nothing needs them as objects in this
    transaction; attachments_of reads them back), after the message row they point at."""
    if mail.attachments:
        inserts.insert_many(session, Attachment, [inserts.values(
            Attachment, message_id=message_id, filename=att.filename,
            content_type=att.content_type, size=att.size,
            sha256=stored.put_attachment(att.data), inline=att.inline,
            content_id=att.content_id) for att in mail.attachments])
    if not ticket_is_new:
        ticket.updated_at = clock.now()
    # searchable exactly when it commits; the message row and its attachments are in the
    # database already (nothing else the index reads is pending in the session)
    search.index_message(session, message_id, new=True, flush=False)


def store_incoming(session: Session, data_dir: Path, ticket: Ticket, mail: ParsedMail,
                   raw: bytes, *, route: str, threaded_by: str,
                   ticket_is_new: bool = False) -> Message:
    """Store an incoming mail on `ticket`, its rows written at once; the message as an
    object the session holds (a change to it is an UPDATE at the next flush; a caller
    that needs no object calls `add_incoming`). `ticket_is_new`: the ticket was made
    for this mail (in this transaction), so its updated_at is already now: no second
    write."""
    stored = blobs.for_session(session, data_dir)
    row = _incoming_row(stored, ticket, mail, raw, route, threaded_by)
    message = inserts.attach(session, Message, inserts.insert(session, Message, row), row)
    _incoming_rest(session, stored, ticket, mail, int(message.id or 0), ticket_is_new)
    return message


def add_incoming(session: Session, data_dir: Path, ticket: Ticket, mail: ParsedMail,
                 raw: bytes, *, route: str, threaded_by: str,
                 ticket_is_new: bool = False) -> int:
    """`store_incoming` for a caller that needs no Message object (the pipeline's usual
    mail): the same rows, no object built; returns the message's id. It is in the
    caller's transaction like any row: a rolled-back savepoint takes it out."""
    stored = blobs.for_session(session, data_dir)
    message_id = inserts.insert(session, Message,
                                _incoming_row(stored, ticket, mail, raw, route, threaded_by))
    _incoming_rest(session, stored, ticket, mail, message_id, ticket_is_new)
    return message_id


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
