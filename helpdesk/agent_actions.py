"""Carry out an agent's checked reply: field changes, watchers, the lifecycle, review,
and the text to the customer. Every change is a history event naming the agent.

Lifecycle: new -> open on the first agent action; a public reply without a
#status waits on the customer (pending); resolved and closed are told to the
customer. In a queue with `review = true` a resolution by anyone but the lead
waits for the lead's #approve, and nothing reaches the customer before it; a
customer reply in the meantime withdraws it.
"""

from __future__ import annotations

from sqlmodel import Session

from helpdesk import clock, customer_mail, notify
from helpdesk.agent_commands import Reply
from helpdesk.agents import Agent, Directory
from helpdesk.config import Settings
from helpdesk.mimeparts import Attachment
from helpdesk.notify import Notice
from helpdesk.store import staff
from helpdesk.store import tickets as store
from helpdesk.store.models import Message, Review, Status, Ticket


def apply(session: Session, settings: Settings, directory: Directory, ticket: Ticket,
          agent: Agent, reply: Reply, assignee: str,
          attachments: tuple[Attachment, ...]) -> str:
    """Apply every command and send the text; returns a summary for the log."""
    actor = agent.name
    if ticket.status == Status.NEW:
        store.change(session, ticket, "status", Status.OPEN, actor=actor,
                     detail="first agent action")
    _fields(session, settings, directory, ticket, agent, reply, assignee)
    _watching(session, ticket, agent, reply)
    if reply.has("approve") or reply.has("reject"):
        return _decide_review(session, settings, directory, ticket, agent, reply)
    if reply.has("note"):
        notify.send(session, settings, directory, ticket,
                    Notice("note", reply.text, author=actor, by_agent=actor),
                    notify.reply_recipients(session, settings, directory, ticket))
        store.event(session, ticket, "note", actor=actor)
        return "internal note"
    if reply.has("reopen"):
        _set_status(session, ticket, Status.OPEN, actor, detail="reopened by agent")
    target = _close_target(ticket) if reply.has("close") else _status_arg(reply)
    return _lifecycle(session, settings, directory, ticket, agent, reply, target, attachments)


def _close_target(ticket: Ticket) -> Status:
    """#close resolves; on a ticket already resolved there is nothing left but closing."""
    return Status.CLOSED if ticket.status == Status.RESOLVED else Status.RESOLVED


def _status_arg(reply: Reply) -> Status | None:
    value = reply.arg("status").lower()
    return Status(value) if value else None


def _fields(session: Session, settings: Settings, directory: Directory, ticket: Ticket,
            agent: Agent, reply: Reply, assignee: str) -> None:
    actor = agent.name
    if assignee and store.change(session, ticket, "assignee", assignee, actor=actor):
        notify.send(session, settings, directory, ticket,
                    Notice("assigned", reply.text, author=actor, by_agent=actor),
                    [assignee])
    for name in ("priority", "category", "queue"):
        value = reply.arg(name)
        if value:
            store.change(session, ticket, name, value.lower() if name == "priority" else value,
                         actor=actor)
    tags = [t for c in reply.commands if c.name == "tag" for t in c.arg.split()]
    if tags:
        new = set(ticket.tags) | {t for t in tags if not t.startswith("-")}
        new -= {t[1:] for t in tags if t.startswith("-")}
        if new != set(ticket.tags):
            old, ticket.tags = ",".join(ticket.tags), sorted(new)
            store.event(session, ticket, "change", actor=actor, field="tags", old=old,
                        new=",".join(ticket.tags))


def _watching(session: Session, ticket: Ticket, agent: Agent, reply: Reply) -> None:
    """Agents who write on a ticket watch it, unless they say #unwatch."""
    tid = int(ticket.id or 0)
    if reply.has("unwatch"):
        if staff.unwatch(session, tid, agent.name):
            store.event(session, ticket, "unwatch", actor=agent.name)
    elif staff.watch(session, tid, agent.name) and reply.has("watch"):
        store.event(session, ticket, "watch", actor=agent.name)


def _lifecycle(session: Session, settings: Settings, directory: Directory, ticket: Ticket,
               agent: Agent, reply: Reply, target: Status | None,
               attachments: tuple[Attachment, ...]) -> str:
    finishing = target in (Status.RESOLVED, Status.CLOSED)
    if finishing and _needs_review(settings, directory, ticket, agent):
        return _request_review(session, settings, directory, ticket, agent, reply, target,
                               attachments)
    note = customer_mail.STATUS_NOTES.get(target, "") if finishing else ""  # type: ignore[arg-type]
    sent = ""
    if reply.text:
        customer_mail.reply(session, settings, directory, ticket, agent, reply.text,
                            attachments, status_note=note)
        _first_response(session, ticket, agent.name)
        sent = "reply sent"
        if target is None:
            target = Status.PENDING  # a question to the customer: wait for their answer
    elif finishing:
        customer_mail.status_notice(session, settings, ticket, target)  # type: ignore[arg-type]
    if target is not None:
        _set_status(session, ticket, target, agent.name)
    return ", ".join(filter(None, [sent, f"status {ticket.status}"]))


def _needs_review(settings: Settings, directory: Directory, ticket: Ticket,
                  agent: Agent) -> bool:
    """A resolution in a review queue waits for the lead, unless the lead gives it, or
    the ticket is already resolved: that resolution was reviewed (or needed none), and
    closing it only files it away."""
    queue = settings.queue.get(ticket.queue)
    lead = notify.lead_for(settings, directory, ticket)
    return bool(queue and queue.review and lead is not None and lead.name != agent.name
                and ticket.status != Status.RESOLVED)


def _request_review(session: Session, settings: Settings, directory: Directory,
                    ticket: Ticket, agent: Agent, reply: Reply, target: Status,
                    attachments: tuple[Attachment, ...]) -> str:
    held = None
    if reply.text:
        held = customer_mail.reply(session, settings, directory, ticket, agent, reply.text,
                                   attachments, status_note=customer_mail.STATUS_NOTES[target],
                                   hold=True)
    review = Review(ticket_id=ticket.id, agent=agent.name, target_status=target,
                    held_message_id=held.id if held else None)
    session.add(review)
    store.event(session, ticket, "review-requested", actor=agent.name, new=target)
    lead = notify.lead_for(settings, directory, ticket)
    assert lead is not None  # _needs_review checked it
    notify.send(session, settings, directory, ticket,
                Notice("review", reply.text or "(no reply text: the customer gets the "
                       f"{target} notice)", author=agent.name, by_agent=agent.name,
                       reason=f"#status {target}"),
                [lead.name])
    return f"{target} waits for {lead.name}'s review"


def _decide_review(session: Session, settings: Settings, directory: Directory,
                   ticket: Ticket, lead: Agent, reply: Reply) -> str:
    review = staff.pending_review(session, int(ticket.id or 0))
    assert review is not None  # agent_commands.check made sure
    approved = reply.has("approve")
    reason = reply.arg("reject")
    staff.decide_review(review, "approved" if approved else "rejected", by=lead.name,
                        reason=reason)
    store.event(session, ticket, "review-approved" if approved else "review-rejected",
                actor=lead.name, detail=f"requested by {review.agent}" +
                (f": {reason}" if reason else ""))
    if approved:
        _release(session, settings, ticket, review)
        _set_status(session, ticket, Status(review.target_status), lead.name,
                    detail=f"approved resolution by {review.agent}", credit=review.agent)
    else:
        _set_status(session, ticket, Status.OPEN, lead.name, detail=f"rejected: {reason}")
    notify.send(session, settings, directory, ticket,
                Notice("approved" if approved else "rejected", reply.text, author=lead.name,
                       by_agent=lead.name,
                       reason=reason), [review.agent])
    return f"review {review.status} by {lead.name}"


def withdraw_review(session: Session, ticket: Ticket, actor: str) -> str:
    """The customer wrote again, so the ticket is not done: a resolution waiting for review
    is withdrawn (its held reply never goes out) and the lead can no longer approve what
    the customer has just contradicted. Returns what was withdrawn, "" when nothing was."""
    review = staff.pending_review(session, int(ticket.id or 0))
    if review is None:
        return ""
    why = "the customer wrote again"
    staff.decide_review(review, "withdrawn", by=actor, reason=why)
    withdrawn = f"{review.target_status} by {review.agent} withdrawn from review: {why}"
    store.event(session, ticket, "review-withdrawn", actor=actor, detail=withdrawn)
    return withdrawn


def _release(session: Session, settings: Settings, ticket: Ticket, review: Review) -> None:
    held = session.get(Message, review.held_message_id) \
        if review.held_message_id else None
    if held is not None:
        customer_mail.release(session, settings, ticket, held)
        _first_response(session, ticket, review.agent)  # sent now, but written by them
    else:
        customer_mail.status_notice(session, settings, ticket, review.target_status)


def _first_response(session: Session, ticket: Ticket, author: str) -> None:
    """The first reply that reached the customer: timed when it was sent, credited to
    the agent who wrote it."""
    if ticket.first_response_at is None:
        ticket.first_response_at = clock.now()
        store.credit(session, ticket, "first_response", author)


def _set_status(session: Session, ticket: Ticket, status: Status, actor: str,
                detail: str = "", *, credit: str = "") -> None:
    """Change the status as `actor`; a resolution is credited to `credit` (the agent whose
    resolution a lead approved), else to `actor`."""
    if not store.change(session, ticket, "status", status, actor=actor, detail=detail):
        return
    now = clock.now()
    if status in (Status.RESOLVED, Status.CLOSED) and ticket.resolved_at is None:
        store.credit(session, ticket, "resolution", credit or actor,
                     detail=f"approved by {actor}" if credit else "")
    if status == Status.RESOLVED:
        ticket.resolved_at = now
    elif status == Status.CLOSED:
        ticket.closed_at = now
        ticket.resolved_at = ticket.resolved_at or now
    elif status in (Status.OPEN, Status.PENDING):
        ticket.resolved_at = ticket.closed_at = None
