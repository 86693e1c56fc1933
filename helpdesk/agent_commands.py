"""Commands at the top of an agent's reply: parse and check them, all or nothing. Pure.

    #assign bob            #status pending        #priority high
    #category billing      #queue billing         #tag vip -old
    #note                  #close                 #reopen
    #watch  #unwatch       #approve               #reject REASON

One per line, before the text. A mail whose commands are not all valid applies
none of them (a half-applied mail is worse than none: the agent cannot tell what
happened), so `check` returns every problem at once for the answer to the agent.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from helpdesk.agents import Agent, Directory
from helpdesk.priority import PRIORITIES
from helpdesk.store.models import Status

_COMMAND = re.compile(r"^#([A-Za-z][\w-]*)(?:[ \t]+(.*))?$")

# name -> (argument, help): argument is "none", "required" or "optional"
COMMANDS: dict[str, tuple[str, str]] = {
    "assign": ("required", "#assign NAME|me     give the ticket to an agent"),
    "status": ("required", "#status open|pending|resolved|closed"),
    "priority": ("required", "#priority " + "|".join(PRIORITIES)),
    "category": ("required", "#category NAME"),
    "queue": ("required", "#queue NAME         move to another queue"),
    "tag": ("required", "#tag NAME -OTHER    add (or -remove) tags"),
    "note": ("none", "#note               the whole reply is internal, not sent"),
    "close": ("none", "#close              send the reply and resolve (a resolved ticket: close)"),
    "reopen": ("none", "#reopen             back to open"),
    "watch": ("none", "#watch              be told of every customer reply"),
    "unwatch": ("none", "#unwatch            stop being told"),
    "approve": ("none", "#approve            (lead) approve a requested resolution"),
    "reject": ("required", "#reject REASON      (lead) send it back to the agent"),
}
STATUSES = tuple(s.value for s in Status if s is not Status.NEW)
_FINAL = (Status.RESOLVED.value, Status.CLOSED.value)


def cheat_sheet() -> str:
    return "\n".join(help_ for _, help_ in COMMANDS.values())


@dataclass(frozen=True)
class Command:
    name: str
    arg: str
    line: str


@dataclass(frozen=True)
class Reply:
    """An agent's reply split into its command block and the text after it."""

    commands: tuple[Command, ...] = ()
    text: str = ""

    def has(self, name: str) -> bool:
        return any(c.name == name for c in self.commands)

    def arg(self, name: str) -> str:
        return next((c.arg for c in reversed(self.commands) if c.name == name), "")


def split(text: str) -> Reply:
    """Leading `#word ...` lines (blank lines between them allowed) and the rest."""
    lines = text.splitlines()
    commands: list[Command] = []
    index = 0
    for index, line in enumerate(lines):  # noqa: B007 (index is used after the loop)
        stripped = line.strip()
        if not stripped:
            continue
        m = _COMMAND.match(stripped)
        if not m:
            break
        commands.append(Command(m.group(1).lower(), (m.group(2) or "").strip(), stripped))
    else:
        index = len(lines)
    return Reply(tuple(commands), "\n".join(lines[index:]).strip())


@dataclass(frozen=True)
class Situation:
    """What the checks need to know about the ticket and the writer."""

    agent: Agent
    directory: Directory
    queues: Collection[str]
    status: str
    review_pending: bool = False
    is_lead: bool = False


@dataclass
class Check:
    errors: list[str] = field(default_factory=list)
    assignee: str = ""

    def fail(self, command: Command, why: str) -> None:
        self.errors.append(f"{command.line}: {why}")


def check(reply: Reply, sit: Situation) -> Check:
    """Every problem with the commands of `reply`; an empty `errors` means apply them all."""
    result = Check()
    seen: dict[str, str] = {}
    for command in reply.commands:
        spec = COMMANDS.get(command.name)
        if spec is None:
            result.fail(command, f"unknown command #{command.name}")
            continue
        if spec[0] == "required" and not command.arg:
            result.fail(command, "needs an argument")
            continue
        if spec[0] == "none" and command.arg:
            result.fail(command, f"#{command.name} takes no argument")
            continue
        previous = seen.setdefault(command.name, command.arg)
        if command.name != "tag" and previous != command.arg:
            result.fail(command, f"contradicts an earlier #{command.name} {previous}")
            continue
        _check_one(command, sit, result)
    _check_combinations(reply, sit, result)
    return result


def _check_one(command: Command, sit: Situation, result: Check) -> None:
    name, arg = command.name, command.arg
    if name == "assign":
        target = sit.agent if arg.lower() == "me" else (
            sit.directory.agent(arg) or sit.directory.by_address(arg))
        if target is None:
            known = ", ".join(a.name for a in sit.directory.agents)
            result.fail(command, f"no agent named {arg!r} (agents: {known})")
        else:
            result.assignee = target.name
    elif name == "status" and arg.lower() not in STATUSES:
        result.fail(command, f"status must be one of {', '.join(STATUSES)}")
    elif (name == "close" or (name == "status" and arg.lower() in _FINAL)) \
            and sit.review_pending:
        result.fail(command, "a resolution is already waiting for the lead's review")
    elif name == "priority" and arg.lower() not in PRIORITIES:
        result.fail(command, f"priority must be one of {', '.join(PRIORITIES)}")
    elif name == "queue" and arg not in sit.queues:
        result.fail(command, f"no queue {arg!r} (queues: {', '.join(sorted(sit.queues))})")
    elif name in ("category", "tag") and len(arg) > 100:
        result.fail(command, "too long (100 characters at most)")
    elif name in ("approve", "reject"):
        if not sit.is_lead:
            result.fail(command, "only the team's lead may approve or reject")
        elif not sit.review_pending:
            result.fail(command, "no resolution is waiting for review on this ticket")
    elif name == "reopen" and sit.status not in (Status.RESOLVED, Status.CLOSED):
        result.fail(command, f"the ticket is {sit.status}, not resolved or closed")


def _check_combinations(reply: Reply, sit: Situation, result: Check) -> None:
    if reply.has("approve") and reply.has("reject"):
        result.errors.append("#approve and #reject together: choose one")
    if reply.has("close") and reply.has("status") and reply.arg("status").lower() != "resolved":
        result.errors.append("#close and #status together: choose one")
    if reply.has("close") and reply.has("note"):
        result.errors.append("#close sends the reply to the customer, #note keeps it "
                             "internal: choose one")
    if reply.has("reopen") and (reply.has("close") or reply.has("status")):
        result.errors.append("#reopen with #close or #status: choose one")
