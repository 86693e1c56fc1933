"""Tell agents by mail: ticket + event -> jinja2 mail -> outbox rows, in the caller's
transaction (so a notification exists exactly when the change it reports commits).

Each notification's Reply-To is the ticket's reply address signed for that agent,
and the outbox row records the agent: a reply to that address, or In-Reply-To the
notification's Message-ID, is how an agent proves the reply is theirs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace

from sqlmodel import Session

from helpdesk.agents import commands as agent_commands
from helpdesk.config import agents
from helpdesk.config.agents import Agent, Directory
from helpdesk.config.settings import Settings
from helpdesk.mail import tokens
from helpdesk.mail.mimeparts import Attachment
from helpdesk.outgoing import compose as mailout
from helpdesk.store import staff
from helpdesk.store.models import Contact, Ticket

log = logging.getLogger("helpdesk.agents.notify")

HEADLINES = {
    "new": "New ticket",
    "reply": "Customer replied",
    "assigned": "Assigned to you",
    "note": "Internal note",
    "review": "Resolution waiting for your approval",
    "approved": "Resolution approved",
    "rejected": "Resolution rejected",
    "reopened": "Ticket reopened",
    "unverified": "Mail from someone not on the conversation",
    "postmortem": "Post-mortem needed",  # agents.kb_commands.ask_postmortem
    "open-children": "Resolved, but child tickets are still open",
}


@dataclass(frozen=True)
class Notice:
    """What happened: the event, the text to show, who caused it, and the attachments
    of the mail it is about (small ones go with the notification, all are listed)."""

    event: str
    text: str = ""
    author: str = ""  # who to show: an agent name, or the customer's name or address
    reason: str = ""
    # the agent (by name) whose action this is: not told of it. Only ever set from an
    # agent's identity; a customer's display name, however it reads, mutes nobody
    by_agent: str = ""
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class Listed:
    """One attachment as the notification lists it."""

    name: str
    content_type: str
    size: str
    attached: bool


def ticket_pointer(settings: Settings, public_id: str) -> str:
    """Where an agent finds the whole ticket (text and every attachment): its page on
    the desk when the desk is on, else the command that shows it."""
    if settings.web.enabled:
        number = public_id.rpartition("-")[2]
        return f"{settings.public_base_url()}/desk/ticket/{number}"
    return f"helpdesk tickets show {public_id}"


def _attachment_plan(settings: Settings, attachments: tuple[Attachment, ...],
                     ) -> tuple[list[Listed], list[tuple[str, str, bytes]]]:
    """(every attachment as listed, the small ones to attach): each at most
    attach_max_bytes, together at most attach_total_bytes, in the mail's order."""
    cfg = settings.notify
    room = cfg.attach_total_bytes
    listed, attach = [], []
    for att in attachments:
        name = " ".join((att.filename or "(no name)").split())[:200]
        fits = att.size <= cfg.attach_max_bytes and att.size <= room
        if fits:
            room -= att.size
            attach.append((name, att.content_type, att.data))
        listed.append(Listed(name, att.content_type, mailout.size_text(att.size), fits))
    return listed, attach


def _cut_message(settings: Settings, text: str, public_id: str) -> tuple[str, str]:
    """(the text for the notification, the note saying it was cut, or "")."""
    head, more = mailout.cut(text, settings.notify.body_max_bytes)
    if not more:
        return text, ""
    return head, (f"[cut, {max(1, round(more / 1024))} KB more, see {public_id}: "
                  f"{ticket_pointer(settings, public_id)}]")


def team_of(settings: Settings, ticket: Ticket) -> str:
    return agents.team_of(settings, ticket.queue)


def lead_for(settings: Settings, directory: Directory, ticket: Ticket) -> Agent | None:
    """The lead of the ticket's team (Directory.lead_of: the one rule for leads)."""
    return directory.lead_of(team_of(settings, ticket))


def new_ticket_recipients(settings: Settings, directory: Directory, ticket: Ticket) -> list[str]:
    if ticket.assignee:
        return [ticket.assignee]
    return list(directory.team_members(team_of(settings, ticket)))


def reply_recipients(session: Session, settings: Settings, directory: Directory,
                     ticket: Ticket) -> list[str]:
    """The assignee and watchers; nobody yet: the team, so no reply goes unseen."""
    names = [ticket.assignee] if ticket.assignee else []
    names = list(dict.fromkeys([*names, *staff.watchers(session, int(ticket.id or 0))]))
    return names or list(directory.team_members(team_of(settings, ticket)))


def follow_up(session: Session, settings: Settings, directory: Directory, ticket: Ticket,
              notice: Notice, *, reassigned: bool = False, lead_too: bool = False) -> None:
    """A customer's follow-up, to the assignee and watchers; with `lead_too` also to the
    team's lead (their pending review was withdrawn by it). An assignee the follow-up's
    rules just chose hears of it as their assignment, as a new ticket's assignee does,
    and not a second time as a reply."""
    names = reply_recipients(session, settings, directory, ticket)
    lead = lead_for(settings, directory, ticket) if lead_too else None
    names += [lead.name] if lead else []
    if reassigned:
        send(session, settings, directory, ticket, replace(notice, event="assigned"),
             [ticket.assignee])
        names = [n for n in names if n != ticket.assignee]
    send(session, settings, directory, ticket, notice, names)


def send(session: Session, settings: Settings, directory: Directory, ticket: Ticket,
         notice: Notice, names: Iterable[str]) -> int:
    """Queue one notification per named agent (not to the agent who caused it). What
    all of them share (the ticket's facts, the cut text, the attachments) is worked
    out once; each agent's mail names them and has their own reply address."""
    told = []
    for name in dict.fromkeys(names):
        agent = directory.agent(name)
        if agent is None or name == notice.by_agent:
            continue
        if settings.is_own_address(agent.email):  # it would come straight back to us
            log.warning("not notifying %s: their address %s is the helpdesk's own",
                        name, agent.email)
            continue
        told.append(agent)
    if not told:
        return 0
    # numbered before any mail is queued: each lookup would first flush the row before
    numbers = [staff.agent_number(session, agent.name) for agent in told]
    context = _context(session, settings, ticket, notice)
    listed, attach = _attachment_plan(settings, notice.attachments)
    context["attachments"] = listed
    for agent, number in zip(told, numbers, strict=True):
        _queue(session, settings, ticket, notice, agent, number,
               {**context, "agent_name": agent.shown_name}, attach)
    return len(told)


def _queue(session: Session, settings: Settings, ticket: Ticket, notice: Notice,
           agent: Agent, number: int, context: dict[str, object],
           attach: list[tuple[str, str, bytes]]) -> None:
    hd = settings.helpdesk
    subject, text, html = mailout.render(settings, "notify", context, ticket.queue)
    msg = mailout.build(
        settings, to=[agent.email], subject=subject, text=text, html=html,
        reply_to=tokens.ticket_reply_address(settings, ticket.id, agent=number),
        automatic=True, id_hint=f"{hd.ticket_prefix.lower()}-{ticket.id}.{notice.event}",
        attachments=attach)
    mailout.queue(session, msg, kind=f"notify-{notice.event}", ticket_id=ticket.id,
                  mail_from="", automatic=True, agent=agent.name)
    log.info("notify %s of %s on %s-%s", agent.name, notice.event, hd.ticket_prefix, ticket.id)


def _context(session: Session, settings: Settings, ticket: Ticket,
             notice: Notice) -> dict[str, object]:
    """The template context of a notice, but for the agent's name (the same for all)."""
    hd = settings.helpdesk
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    public_id = f"{hd.ticket_prefix}-{ticket.id}"
    message, message_cut = _cut_message(settings, notice.text, public_id)
    return {
        "event": notice.event, "headline": HEADLINES.get(notice.event, notice.event),
        "ticket_id": public_id,
        "tagged_subject": mailout.tagged_subject(hd.ticket_prefix, int(ticket.id or 0),
                                                 ticket.subject),
        "subject": ticket.subject, "customer": contact.email if contact else "",
        "customer_name": contact.name if contact else "", "priority": ticket.priority,
        "category": ticket.category or "-", "queue": ticket.queue, "status": ticket.status,
        "assignee": ticket.assignee or "-", "message": message, "message_cut": message_cut,
        "ticket_pointer": ticket_pointer(settings, public_id), "author": notice.author,
        "reason": notice.reason, "helpdesk_name": hd.name,
        "commands": agent_commands.cheat_sheet(),
    }


def command_error(session: Session, settings: Settings, ticket: Ticket, agent: Agent,
                  errors: list[str], in_reply_to: str) -> None:
    """Tell the agent why nothing of their mail was applied."""
    hd = settings.helpdesk
    context = {"ticket_id": f"{hd.ticket_prefix}-{ticket.id}", "errors": errors,
               "agent_name": agent.shown_name, "commands": agent_commands.cheat_sheet(),
               "tagged_subject": mailout.tagged_subject(hd.ticket_prefix, int(ticket.id or 0),
                                                        ticket.subject),
               "helpdesk_name": hd.name}
    subject, text, html = mailout.render(settings, "command_error", context,
                                         ticket.queue)
    number = staff.agent_number(session, agent.name)
    msg = mailout.build(
        settings, to=[agent.email], subject=subject, text=text, html=html,
        reply_to=tokens.ticket_reply_address(settings, ticket.id, agent=number),
        in_reply_to=in_reply_to, references=[in_reply_to], automatic=True,
        id_hint=f"{hd.ticket_prefix.lower()}-{ticket.id}.error")
    mailout.queue(session, msg, kind="command-error", ticket_id=ticket.id, mail_from="",
                  automatic=True, agent=agent.name)
