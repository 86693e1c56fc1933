"""The ticket operations that work with a reply's text or a message, as #commands:

    #reply NAME     insert the canned reply NAME (agents/canned) after the typed text
    #time 1h30m     time spent on the ticket, with any reply or note (helpdesk stats)
    #split [N]      message N (by mail: the one whose notification this answers)
                    becomes a new ticket, related to this one

Registered after agents/ops_commands (links, merges), through the same registry, so
every door reaches them through agent_actions.run_commands.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlmodel import Session

from helpdesk import clock
from helpdesk.agents import canned, notify
from helpdesk.agents.ops_commands import prefix_of, public
from helpdesk.agents.registry import (
    AgentCommand,
    Check,
    Command,
    Conflict,
    Reply,
    Situation,
    forbid,
    register,
)
from helpdesk.store import ticket_ops
from helpdesk.store import tickets as store
from helpdesk.store.models import Contact, Message
from helpdesk.store.ops_models import TimeEntry

if TYPE_CHECKING:
    from helpdesk.agents.actions import Action


# -- canned replies ------------------------------------------------------------------------

@register
class CannedReply(AgentCommand):
    name, argument, usage = "reply", "required", "NAME"
    summary, max_length = "insert the canned reply NAME (config/replies/NAME.md)", 64

    def check(self, command: Command, sit: Situation, result: Check) -> None:
        found = canned.find(sit.settings, command.arg) if sit.settings else None
        if found is None:
            known = [c.name for c in canned.available(sit.settings)] if sit.settings else []
            result.fail(command, f"no canned reply {command.arg!r} "
                                 f"(replies: {', '.join(known) or 'none'})")
            return
        try:
            canned.check(found)
        except canned.CannedError as err:
            result.fail(command, str(err))
            return
        result.resolved[self.name] = found.name

    def apply(self, act: Action, given: list[Command]) -> None:
        found = canned.find(act.settings, act.resolved[self.name])
        assert found is not None  # checked
        ticket = act.ticket
        contact = act.session.get(Contact, ticket.contact_id) if ticket.contact_id else None
        text = canned.render(found, {
            "customer_name": (contact.name or contact.email) if contact else "",
            "customer_email": contact.email if contact else "",
            "ticket_id": public(prefix_of(act), ticket.id), "subject": ticket.subject,
            "agent_name": act.agent.shown_name})
        # what the agent typed comes first, then the canned text: it goes to the customer
        # like any reply (agent_actions.Action.finish)
        act.reply = Reply(act.reply.commands, "\n\n".join(filter(None, [act.reply.text, text])))
        act.event("canned-reply", new=found.name)


forbid(Conflict("reply", ("note",), "#reply sends a canned reply to the customer, #note "
                                    "keeps the reply internal: choose one"))


# -- time tracking -------------------------------------------------------------------------

_SPAN = re.compile(r"(?:(\d{1,2})\s*h)?\s*(?:(\d{1,4})\s*m(?:in)?)?", re.IGNORECASE)
MAX_MINUTES = 24 * 60


def minutes(text: str) -> int | None:
    """"25m", "1h30m", "2h", "1h 5min" or bare minutes "25" -> minutes; None if not one."""
    text = text.strip()
    if text.isdigit() and len(text) <= 4:
        return int(text)
    m = _SPAN.fullmatch(text)
    if not m or not (m.group(1) or m.group(2)):
        return None
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


@register
class Time(AgentCommand):
    name, argument, usage = "time", "required", "25m|1h30m"
    summary, max_length = "time spent on the ticket (with any reply or note)", 20

    def check(self, command: Command, sit: Situation, result: Check) -> None:
        spent = minutes(command.arg)
        if spent is None:
            result.fail(command, "not a time: write it like 25m, 1h30m or 2h")
        elif not 0 < spent <= MAX_MINUTES:
            result.fail(command, f"between 1 minute and {MAX_MINUTES // 60} hours")
        else:
            result.resolved[self.name] = str(spent)

    def apply(self, act: Action, given: list[Command]) -> None:
        spent = int(act.resolved[self.name])
        act.session.add(TimeEntry(ticket_id=int(act.ticket.id or 0), agent=act.actor,
                                  queue=act.ticket.queue, minutes=spent, at=clock.now()))
        act.event("time", new=f"{spent} min")


# -- splitting -----------------------------------------------------------------------------

@register
class Split(AgentCommand):
    name, argument, usage = "split", "optional", "[N]"
    summary, max_length = "message N (by mail: the one notified) becomes a new ticket", 20

    def check(self, command: Command, sit: Situation, result: Check) -> None:
        session = sit.session
        number = command.arg.strip().lstrip("#")
        if not number:
            result.fail(command, "which message? Answer the notification of the message "
                                 "to split off, or give its number (#split 123)")
            return
        message = session.get(Message, int(number)) if session is not None \
            and number.isdigit() and len(number) < 12 else None
        if message is None or message.ticket_id != sit.ticket_id:
            result.fail(command, f"no message {number} on this ticket")
        elif message.direction != "in":
            result.fail(command, "only a mail we received can become a ticket")
        elif ticket_ops.first_message(session, sit.ticket_id) == message.id:  # type: ignore[arg-type]
            result.fail(command, "that mail opened this ticket: nothing would be left")
        else:
            result.resolved[self.name] = str(message.id)

    def apply(self, act: Action, given: list[Command]) -> None:
        session, old = act.session, act.ticket
        message = session.get(Message, int(act.resolved[self.name]))
        assert message is not None  # checked
        new = ticket_ops.split_off(session, old, message, act.actor)
        prefix = prefix_of(act)
        act.event("split", new=public(prefix, new.id), detail=f"message {message.id}")
        store.event(session, new, "split-from", actor=act.actor, new=public(prefix, old.id),
                    detail=f"message {message.id}")
        notify.send(session, act.settings, act.directory, new,
                    notify.Notice("new", message.body_text,
                                  author=message.from_name or message.from_addr,
                                  reason=f"split from {public(prefix, old.id)} by {act.actor}",
                                  by_agent=act.actor),
                    notify.new_ticket_recipients(act.settings, act.directory, new))


def split_target(session: Session, ticket_id: int, agent: str, reply: Reply,
                 in_reply_to: list[str]) -> Reply:
    """By mail, `#split` without a number splits the message whose notification the
    agent answers (their mail's In-Reply-To): fill the number in before the checks."""
    if not any(c.name == "split" and not c.arg for c in reply.commands):
        return reply
    found = ticket_ops.notified_message(session, ticket_id, agent, in_reply_to)
    if found is None:
        return reply
    return Reply(tuple(Command(c.name, str(found), c.line) if c.name == "split" and not c.arg
                       else c for c in reply.commands), reply.text)
