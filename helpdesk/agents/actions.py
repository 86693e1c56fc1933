"""Carry out an agent's reply: `run_commands` checks its commands and applies all or
none, for every door (mail, the shell, later the web desk and the API). Each
registered command (agent_commands) applies itself through the `Action`: field
changes, watchers, the lifecycle, review, and the text to the customer. Every
change is a history event naming the agent.

Lifecycle: new -> open on the first agent action; a public reply without a
#status waits on the customer (pending); resolved and closed are told to the
customer. In a queue with `review = true` a resolution by anyone but the lead
waits for the lead's #approve, and nothing reaches the customer before it; a
customer reply in the meantime withdraws it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

from sqlmodel import Session

from helpdesk import clock
from helpdesk.agents import commands as agent_commands
from helpdesk.agents import kb_commands as kb_commands
from helpdesk.agents import notify, ops_commands, ops_work  # noqa: F401 (ops_work registers)
from helpdesk.agents import registry as agent_registry
from helpdesk.agents.commands import Reply, Situation
from helpdesk.agents.notify import Notice
from helpdesk.config.agents import Agent, Directory
from helpdesk.config.settings import Settings
from helpdesk.mail import parse
from helpdesk.mail.mimeparts import Attachment
from helpdesk.outgoing import to_customer as customer_mail
from helpdesk.store import staff
from helpdesk.store import tickets as store
from helpdesk.store.models import Message, Review, Status, Ticket


@dataclass(frozen=True)
class Outcome:
    """What became of an agent's commands: refused (`errors`, nothing changed) or applied
    (`summary`, one line for the log or the shell)."""

    errors: tuple[str, ...] = ()
    summary: str = ""


def run_commands(session: Session, settings: Settings, directory: Directory, ticket: Ticket,
                 agent: Agent, reply: Reply,
                 attachments: tuple[Attachment, ...] = (),
                 may_see: Callable[[int], bool] | None = None) -> Outcome:
    """Check every command of `reply`, then apply all of them or none: the one way in for
    every door an agent acts through (mail, the shell, later the web desk and the API)."""
    sit = situation(session, settings, directory, ticket, agent)
    if may_see is not None:  # a door with its own rule of who sees which ticket (the desk)
        sit = replace(sit, may_see=may_see)
    checked = agent_commands.check(reply, sit)
    checked.errors.extend(ops_commands.refuse_on_pointer(sit, reply))
    if checked.errors:
        return Outcome(errors=tuple(checked.errors))
    act = Action(session, settings, directory, ticket, agent, reply, checked.resolved,
                 attachments)
    before = ticket.status
    summary = ops_commands.after_apply(act, before, _apply(act))
    # a resolution of an important ticket asks for its post-mortem ([kb])
    kb_commands.ask_postmortem(session, settings, directory, ticket, agent, before)
    return Outcome(summary=summary)


def keep_note(session: Session, settings: Settings, ticket: Ticket, agent: Agent, text: str,
              attachments: tuple[Attachment, ...] = (), *, route: str,
              threaded_by: str) -> Message:
    """By mail, a #note is the agent's own mail kept on the ticket for agents only; from
    a door without a mail (the shell, the web desk) one is written and stored the same
    way, so the note reads (and is searched) alike whichever way it came."""
    mail = EmailMessage()
    mail["From"] = formataddr((agent.name, agent.email))
    mail["To"] = settings.helpdesk.address
    mail["Subject"] = f"[{settings.helpdesk.ticket_prefix}-{ticket.id}] {ticket.subject}"
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain=settings.helpdesk.address.rpartition("@")[2])
    mail.set_content(text)
    for a in attachments:
        maintype, _, subtype = a.content_type.partition("/")
        mail.add_attachment(a.data, maintype=maintype or "application",
                            subtype=subtype or "octet-stream", filename=a.filename)
    raw = mail.as_bytes()
    stored = store.store_incoming(session, settings.data_dir, ticket, parse.parse(raw), raw,
                                  route=route, threaded_by=threaded_by)
    stored.internal = True
    return stored


def situation(session: Session, settings: Settings, directory: Directory, ticket: Ticket,
              agent: Agent) -> Situation:
    """What the checks need to know: the queues, a review waiting, whether `agent` leads."""
    lead = notify.lead_for(settings, directory, ticket)
    queues = {*settings.queue, settings.helpdesk.default_queue, ticket.queue}
    return Situation(
        agent=agent, directory=directory, queues=queues, status=ticket.status,
        review_pending=staff.pending_review(session, int(ticket.id or 0)) is not None,
        is_lead=lead is not None and lead.name == agent.name,
        ticket_id=int(ticket.id or 0), session=session, settings=settings)


def _apply(act: Action) -> str:
    """Apply every (checked) command and send the text; returns a summary for the log."""
    if act.ticket.status == Status.NEW:
        act.change("status", Status.OPEN, detail="first agent action")
    for command, given in agent_registry.to_apply(act.reply, "change"):
        command.apply(act, given)
    if act.watch_after:  # agents who write on a ticket watch it
        act.watch()
    for command, given in agent_registry.to_apply(act.reply, "outcome"):
        summary = command.apply(act, given)
        if summary is not None:
            return summary
    return act.finish()


@dataclass
class Action:
    """One agent acting on one ticket with one checked reply: what the commands' `apply`
    work with, whichever door the reply came through."""

    session: Session
    settings: Settings
    directory: Directory
    ticket: Ticket
    agent: Agent
    reply: Reply
    resolved: dict[str, str] = field(default_factory=dict)  # by the checks (Check.resolved)
    attachments: tuple[Attachment, ...] = ()
    # the writer is made a watcher after the changes: #unwatch says not, #watch did it
    watch_after: bool = True
    target: Status | None = None  # where the reply takes the ticket (#status, #close)

    @property
    def actor(self) -> str:
        return self.agent.name

    def change(self, name: str, value: str, detail: str = "") -> bool:
        """Set a ticket field, recorded in the history; False when it had that value."""
        return store.change(self.session, self.ticket, name, value, actor=self.actor,
                            detail=detail)

    def event(self, kind: str, **details: str) -> None:
        store.event(self.session, self.ticket, kind, actor=self.actor, **details)

    def tell(self, event: str, names: list[str]) -> None:
        """Notify agents (not the actor) of `event`, with the reply's text."""
        notify.send(self.session, self.settings, self.directory, self.ticket,
                    Notice(event, self.reply.text, author=self.actor, by_agent=self.actor),
                    names)

    def agents_on_ticket(self) -> list[str]:
        return notify.reply_recipients(self.session, self.settings, self.directory,
                                       self.ticket)

    def watch(self) -> bool:
        return staff.watch(self.session, int(self.ticket.id or 0), self.actor)

    def unwatch(self) -> bool:
        return staff.unwatch(self.session, int(self.ticket.id or 0), self.actor)

    def set_status(self, status: Status, detail: str = "") -> None:
        _set_status(self.session, self.ticket, status, self.actor, detail)

    def decide_review(self, approved: bool, reason: str) -> str:
        return _decide_review(self, approved, reason)

    def finish(self) -> str:
        """The text goes to the customer (or waits for review) and the ticket moves to
        `target`; a reply without one waits for the customer."""
        return _lifecycle(self.session, self.settings, self.directory, self.ticket,
                          self.agent, self.reply, self.target, self.attachments)


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
        if ticket.internal:  # no customer: kept for agents (to_customer), nobody to wait on
            sent = "kept for agents (internal ticket)"
        else:
            _first_response(session, ticket, agent.name)
            sent = "reply sent"
        if target is None and not ticket.internal:
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


def _decide_review(act: Action, approved: bool, reason: str) -> str:
    session, ticket, lead = act.session, act.ticket, act.agent
    review = staff.pending_review(session, int(ticket.id or 0))
    assert review is not None  # the check of #approve and #reject made sure
    staff.decide_review(review, "approved" if approved else "rejected", by=lead.name,
                        reason=reason)
    store.event(session, ticket, "review-approved" if approved else "review-rejected",
                actor=lead.name, detail=f"requested by {review.agent}" +
                (f": {reason}" if reason else ""))
    if approved:
        _release(session, act.settings, ticket, review)
        _set_status(session, ticket, Status(review.target_status), lead.name,
                    detail=f"approved resolution by {review.agent}", credit=review.agent)
    else:
        _set_status(session, ticket, Status.OPEN, lead.name, detail=f"rejected: {reason}")
    notify.send(session, act.settings, act.directory, ticket,
                Notice("approved" if approved else "rejected", act.reply.text,
                       author=lead.name, by_agent=lead.name, reason=reason), [review.agent])
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
