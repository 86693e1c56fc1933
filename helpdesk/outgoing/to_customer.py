"""Mail to the customer: the acknowledgement of a new ticket, agents' replies, status notices.

The customer always hears from the helpdesk address, never the agent's own (unless
[helpdesk] reveal_agent_address), threaded onto the customer's last mail, with
the people they copied kept on copy. An agent's reply is a person writing, so it
carries no Auto-Submitted; status notices are generated and do.
"""

from __future__ import annotations

import email
import email.policy
import logging
from email.message import EmailMessage

from sqlmodel import Session

from helpdesk import thread
from helpdesk.config.agents import Agent, Directory
from helpdesk.config.settings import Settings
from helpdesk.kb import suggest as kb_suggest
from helpdesk.mail import automatic as autoreply
from helpdesk.mail import parse, tokens
from helpdesk.mail.mimeparts import Attachment
from helpdesk.outgoing import compose as mailout
from helpdesk.outgoing import portal_links
from helpdesk.rules import Decision
from helpdesk.store import blobs, staff
from helpdesk.store import tickets as store
from helpdesk.store.models import Contact, Message, Status, Ticket

log = logging.getLogger("helpdesk.outgoing.to_customer")

STATUS_NOTES = {
    Status.RESOLVED: "We consider your request resolved. If anything is still wrong, simply "
                     "reply to this mail and the ticket opens again.",
    Status.CLOSED: "Your request is now closed. If you write again, we will open a new "
                   "ticket for you.",
}


def acknowledge(session: Session, settings: Settings, ticket: Ticket, mail: parse.ParsedMail,
                automatic: autoreply.Automatic, decision: Decision) -> None:
    """Tell the customer their mail became a ticket, unless that could feed a loop
    (RFC 3834 by `automatic`, autoreply.classify's verdict; the per-sender limits on
    acknowledgements), it is spam or a bounce, or a rule says no."""
    hd = settings.helpdesk
    kind = autoreply.ack_kind(session, mail)
    allowed, why = autoreply.may_autoreply(
        session, mail, automatic, is_own=settings.is_own_address, kind=kind,
        loop_limit=hd.autoreply_limit, ack_limit=hd.ack_limit)
    bounce = automatic.bounce
    if decision.spam or decision.ack_template == "" or (bounce and allowed):
        allowed = False
        why = ("spam" if decision.spam else "bounce: delivery status notification" if bounce
               else "a rule says no acknowledgement")
    if not allowed:
        store.event(session, ticket, "no-ack", detail=why)
        log.info("no acknowledgement for %s-%s: %s", hd.ticket_prefix, ticket.id, why)
        return
    public_id = f"{hd.ticket_prefix}-{ticket.id}"
    tagged = mailout.tagged_subject(hd.ticket_prefix, ticket.id, mail.subject)
    context = {"ticket_id": public_id, "subject": ticket.subject, "tagged_subject": tagged,
               "customer_name": mail.from_name, "customer": mail.from_addr,
               "helpdesk_name": hd.name, "queue": ticket.queue,
               "priority": ticket.priority, "category": ticket.category,
               "status_url": portal_links.ticket_url(settings, ticket.id),
               # published public KB articles matching the mail (deflection), with links
               "kb_articles": kb_suggest.for_acknowledgement(
                   session, settings, ticket, f"{mail.subject}\n{mail.body_text}")}
    template = decision.ack_template or "ack"
    if ticket.unconfirmed:  # a web form's request from an unknown address: confirm first
        template, context["confirm_url"] = "web_confirm", portal_links.confirm_url(
            settings, ticket.id)
    subject, text, html = mailout.render(settings, template, context, ticket.queue)
    msg = mailout.build(
        settings, to=[mail.from_addr], subject=subject, text=text, html=html,
        reply_to=tokens.ticket_reply_address(settings, ticket.id),
        in_reply_to=mail.message_id, references=[*mail.references, mail.message_id],
        automatic=True, id_hint=public_id.lower())
    # RFC 3834: automatic answers go out with a null envelope sender
    mailout.queue(session, msg, kind=kind, ticket_id=ticket.id, mail_from="", automatic=True)
    store.event(session, ticket, "ack", detail=f"to {mail.from_addr}")


def _thread(session: Session, ticket: Ticket) -> tuple[str, list[str], list[str]]:
    """(customer address, Cc to keep, References) from the customer's last mail; an
    internal ticket has no customer: nothing."""
    if ticket.internal:
        return "", [], []
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    last = staff.last_customer_message(session, int(ticket.id or 0))
    customer = contact.email if contact else (last.from_addr if last else "")
    if last is None:
        return customer, [], []
    refs = [*last.references.split(), last.message_id] if last.message_id else []
    return customer, list(last.cc), refs


def _keep_cc(session: Session, settings: Settings, directory: Directory, ticket: Ticket,
             customer: str, cc: list[str]) -> list[str]:
    """The customer's Cc that stay on copy: only people the customer brought onto the
    conversation (thread.participants: never us, in any form), not our agents nor the
    customer, and at most [helpdesk] max_kept_cc of them, the cut recorded."""
    people = thread.participants(session, settings, int(ticket.id or 0))
    kept = [address for address in dict.fromkeys(a.lower() for a in cc)
            if address in people and address != customer.lower()
            and not directory.is_agent_address(address)]
    cap = settings.helpdesk.max_kept_cc
    if len(kept) > cap:
        store.event(session, ticket, "cc-capped",
                    detail=f"{len(kept) - cap} of {len(kept)} people on the customer's Cc "
                           f"left off this reply ([helpdesk] max_kept_cc = {cap})")
        kept = kept[:cap]
    return kept


def reply(session: Session, settings: Settings, directory: Directory, ticket: Ticket,
          agent: Agent, text: str, attachments: tuple[Attachment, ...], *,
          status_note: str = "", hold: bool = False) -> Message:
    """Send the agent's text to the customer (or hold it for review); returns the stored
    outgoing message. On an internal ticket (no customer) it is kept for agents only."""
    hd = settings.helpdesk
    hold = hold or ticket.internal
    customer, cc, refs = _thread(session, ticket)
    cc = _keep_cc(session, settings, directory, ticket, customer, cc)
    reveal = hd.reveal_agent_address
    context = {
        "text": text, "status_note": status_note, "helpdesk_name": hd.name,
        "ticket_id": f"{hd.ticket_prefix}-{ticket.id}",
        "tagged_subject": mailout.tagged_subject(hd.ticket_prefix, int(ticket.id or 0),
                                                 ticket.subject),
        "agent_name": agent.shown_name,
        "author_line": f"{agent.shown_name} <{agent.email}>\n" if reveal
        else f"{agent.shown_name}\n",
        "status_url": portal_links.ticket_url(settings, ticket.id),
    }
    subject, body, html = mailout.render(settings, "agent_reply", context, ticket.queue)
    msg = mailout.build(
        settings, to=[customer], cc=cc, subject=subject, text=body, html=html,
        from_name=f"{agent.shown_name} ({hd.name})", reply_to=_reply_to(settings, ticket, agent),
        in_reply_to=refs[-1] if refs else "",
        references=refs, automatic=False, id_hint=f"{hd.ticket_prefix.lower()}-{ticket.id}",
        attachments=[(a.filename or "attachment", a.content_type, a.data) for a in attachments])
    if not hold:
        mailout.queue(session, msg, kind="agent-reply", ticket_id=ticket.id,
                      mail_from=hd.address, automatic=False)
    raw = mailout.wire_bytes(msg)
    return staff.store_outgoing(
        session, settings.data_dir, ticket, message_id=str(msg["Message-ID"]).strip("<> "),
        from_addr=hd.address, to=[customer], cc=cc, subject=subject, text=text, raw=raw,
        author=agent.name, internal=hold, in_reply_to=refs[-1] if refs else "",
        references=refs, attachments=attachments)


def _reply_to(settings: Settings, ticket: Ticket, agent: Agent) -> str:
    hd = settings.helpdesk
    ticket_address = tokens.ticket_reply_address(settings, ticket.id)
    return f"{ticket_address}, {agent.email}" if hd.reveal_agent_address else ticket_address


def release(session: Session, settings: Settings, ticket: Ticket, held: Message) -> None:
    """Send a reply that was held for review, exactly as it was written."""
    raw = blobs.for_session(session, settings.data_dir).read(held.raw_path)
    msg = email.message_from_bytes(raw, policy=mailout.POLICY)
    assert isinstance(msg, EmailMessage)
    mailout.queue(session, msg, kind="agent-reply", ticket_id=ticket.id,
                  mail_from=settings.helpdesk.address, automatic=False)
    held.internal = False


def status_notice(session: Session, settings: Settings, ticket: Ticket, status: str) -> None:
    """Tell the customer their ticket is resolved or closed (generated: Auto-Submitted)."""
    note = STATUS_NOTES.get(Status(status))
    if note is None:
        return
    hd = settings.helpdesk
    customer, _, refs = _thread(session, ticket)
    if not customer:
        return
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    context = {"status": status, "status_note": note, "helpdesk_name": hd.name,
               "customer_name": contact.name if contact else "",
               "ticket_id": f"{hd.ticket_prefix}-{ticket.id}",
               "tagged_subject": mailout.tagged_subject(hd.ticket_prefix, int(ticket.id or 0),
                                                        ticket.subject),
               "status_url": portal_links.ticket_url(settings, ticket.id)}
    subject, text, html = mailout.render(settings, "status", context, ticket.queue)
    msg = mailout.build(
        settings, to=[customer], subject=subject, text=text, html=html,
        reply_to=tokens.ticket_reply_address(settings, ticket.id),
        in_reply_to=refs[-1] if refs else "", references=refs, automatic=True,
        id_hint=f"{hd.ticket_prefix.lower()}-{ticket.id}.{status}")
    mailout.queue(session, msg, kind=f"status-{status}", ticket_id=ticket.id, mail_from="",
                  automatic=True)
