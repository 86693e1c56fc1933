"""The built-in commands at the top of an agent's reply, one registered class each.

    #assign bob            #status pending        #priority high
    #category billing      #queue billing         #tag vip -old
    #note                  #close                 #reopen
    #watch  #unwatch       #approve               #reject REASON

One per line, before the text. A mail whose commands are not all valid applies
none of them (a half-applied mail is worse than none: the agent cannot tell what
happened), so `check` returns every problem at once for the answer to the agent.
The registry (parsing, checking, the help text) is agent_registry; applying,
agent_actions. A new command is one more `@register`ed class, here or anywhere
imported at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from helpdesk.agents.registry import (
    AgentCommand,
    Check,
    Command,
    Conflict,
    Reply,
    Situation,
    cheat_sheet,
    check,
    command,
    forbid,
    register,
    split,
)
from helpdesk.config.priority import PRIORITIES
from helpdesk.store.models import Status

if TYPE_CHECKING:
    from helpdesk.agents.actions import Action

__all__ = [
    "STATUSES",
    "Check",
    "Command",
    "Reply",
    "Situation",
    "cheat_sheet",
    "check",
    "command",
    "split",
]

STATUSES = tuple(s.value for s in Status if s is not Status.NEW)
_FINAL = (Status.RESOLVED.value, Status.CLOSED.value)

# registered in the order of the help lines; within a stage (see agent_registry) also
# the order they are applied in, so the fields change in this order in the history


@register
class Assign(AgentCommand):
    name, argument = "assign", "required"
    usage, summary = "NAME|me", "give the ticket to an agent"

    def check(self, command: Command, sit: Situation, result: Check) -> None:
        arg = command.arg
        target = sit.agent if arg.lower() == "me" else (
            sit.directory.agent(arg) or sit.directory.by_address(arg))
        if target is None:
            known = ", ".join(a.name for a in sit.directory.agents)
            result.fail(command, f"no agent named {arg!r} (agents: {known})")
        else:
            result.resolved[self.name] = target.name

    def apply(self, act: Action, given: list[Command]) -> None:
        assignee = act.resolved[self.name]
        if act.change("assignee", assignee):
            act.tell("assigned", [assignee])


class _Resolving(AgentCommand):
    """A command that may resolve the ticket: not while a resolution awaits review."""

    stage = "outcome"

    def resolves(self, command: Command) -> bool:
        return True

    def check(self, command: Command, sit: Situation, result: Check) -> None:
        if self.resolves(command) and sit.review_pending:
            result.fail(command, "a resolution is already waiting for the lead's review")


@register
class SetStatus(_Resolving):
    name, argument, choices = "status", "required", STATUSES

    def resolves(self, command: Command) -> bool:
        return command.arg.lower() in _FINAL

    def apply(self, act: Action, given: list[Command]) -> None:
        act.target = Status(given[-1].arg.lower())


class _Field(AgentCommand):
    """A ticket field set to the argument."""

    argument = "required"

    def apply(self, act: Action, given: list[Command]) -> None:
        value = given[-1].arg
        act.change(self.name, value.lower() if self.choices else value)


@register
class SetPriority(_Field):
    name, choices = "priority", PRIORITIES


@register
class Category(_Field):
    name, usage, max_length = "category", "NAME", 100


@register
class Queue(_Field):
    name, usage, summary = "queue", "NAME", "move to another queue"

    def check(self, command: Command, sit: Situation, result: Check) -> None:
        if command.arg not in sit.queues:
            result.fail(command, f"no queue {command.arg!r} "
                                 f"(queues: {', '.join(sorted(sit.queues))})")


@register
class Tag(AgentCommand):
    name, argument = "tag", "required"
    usage, summary = "NAME -OTHER", "add (or -remove) tags"
    max_length, repeatable = 100, True

    def apply(self, act: Action, given: list[Command]) -> None:
        tags = [t for c in given for t in c.arg.split()]
        ticket = act.ticket
        new = set(ticket.tags) | {t for t in tags if not t.startswith("-")}
        new -= {t[1:] for t in tags if t.startswith("-")}
        if new != set(ticket.tags):
            old, ticket.tags = ",".join(ticket.tags), sorted(new)
            act.event("change", field="tags", old=old, new=",".join(ticket.tags))


@register
class Note(AgentCommand):
    name, summary = "note", "the whole reply is internal, not sent"
    stage, overrides = "outcome", ("reopen", "status")

    def apply(self, act: Action, given: list[Command]) -> str:
        act.tell("note", act.agents_on_ticket())
        act.event("note")
        return "internal note"


@register
class Close(_Resolving):
    name, summary = "close", "send the reply and resolve (a resolved ticket: close)"
    overrides = ("status",)  # #status resolved, the only one allowed with it

    def apply(self, act: Action, given: list[Command]) -> None:
        # a ticket already resolved has nothing left but closing
        resolved = act.ticket.status == Status.RESOLVED
        act.target = Status.CLOSED if resolved else Status.RESOLVED


@register
class Reopen(AgentCommand):
    name, summary, stage = "reopen", "back to open", "outcome"

    def check(self, command: Command, sit: Situation, result: Check) -> None:
        if sit.status not in (Status.RESOLVED, Status.CLOSED):
            result.fail(command, f"the ticket is {sit.status}, not resolved or closed")

    def apply(self, act: Action, given: list[Command]) -> None:
        act.set_status(Status.OPEN, detail="reopened by agent")


@register
class Watch(AgentCommand):
    name, summary = "watch", "be told of every customer reply"

    def apply(self, act: Action, given: list[Command]) -> None:
        act.watch_after = False  # done here, and said in the history
        if act.watch():
            act.event("watch")


@register
class Unwatch(AgentCommand):
    name, summary = "unwatch", "stop being told"
    overrides = ("watch",)

    def apply(self, act: Action, given: list[Command]) -> None:
        act.watch_after = False
        if act.unwatch():
            act.event("unwatch")


class _Review(AgentCommand):
    """The lead's decision on a resolution waiting for review: the reply is about it."""

    stage, overrides = "outcome", ("note", "reopen", "status", "close")

    def offered(self, sit: Situation) -> bool:
        return sit.is_lead and sit.review_pending

    def check(self, command: Command, sit: Situation, result: Check) -> None:
        if not sit.is_lead:
            result.fail(command, "only the team's lead may approve or reject")
        elif not sit.review_pending:
            result.fail(command, "no resolution is waiting for review on this ticket")


@register
class Approve(_Review):
    name, summary = "approve", "(lead) approve a requested resolution"

    def apply(self, act: Action, given: list[Command]) -> str:
        return act.decide_review(approved=True, reason="")


@register
class Reject(_Review):
    name, argument = "reject", "required"
    usage, summary = "REASON", "(lead) send it back to the agent"

    def apply(self, act: Action, given: list[Command]) -> str:
        return act.decide_review(approved=False, reason=given[-1].arg)


def _status_resolved(reply: Reply) -> bool:
    return reply.arg("status").lower() == "resolved"


# combinations refused outright (the agent is told to choose), checked after each command
forbid(
    Conflict("approve", ("reject",), "#approve and #reject together: choose one"),
    Conflict("close", ("status",), "#close and #status together: choose one",
             unless=_status_resolved),
    Conflict("close", ("note",), "#close sends the reply to the customer, #note keeps it "
                                 "internal: choose one"),
    Conflict("reopen", ("close", "status"), "#reopen with #close or #status: choose one"),
)

# the knowledge base's commands (#kb, #publish, #postmortem): registered after these,
# so they come last in the help and in each stage
from helpdesk.agents import kb_commands  # noqa: E402, F401
