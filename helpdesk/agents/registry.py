"""The registry of agents' #commands: one class per command, registered by name. Pure.

A command says its name (and aliases), whether it takes an argument, its help
line, how it is checked and how it is applied. Every door an agent acts through
(a reply by mail, `helpdesk tickets ...`, later the web desk and the JSON API)
parses into `Command`s, checks them here and applies them through
agent_actions.run_commands, so adding a command is adding one registered class.

Imports only the base and the agents directory: notify builds its help text from
here, and the apply side (which sends mail) reaches the ticket through the
`Action` it is handed, so nothing here imports what imports us.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

from helpdesk.config.agents import Agent, Directory
from helpdesk.errors import DuplicateCommandError

if TYPE_CHECKING:
    from sqlmodel import Session

    from helpdesk.agents.actions import Action
    from helpdesk.config.settings import Settings

_COMMAND = re.compile(r"^#([A-Za-z][\w-]*)(?:[ \t]+(.*))?$")
_NAME = re.compile(r"^[a-z][\w-]*$")

Argument = Literal["none", "required", "optional"]
# "change" commands are all applied first (fields, watching); then "outcome" commands
# decide what becomes of the text: one that returns a summary ends the reply, else the
# text goes to the customer (agent_actions.Action.finish). Within a stage, commands are
# applied in registration order, which is also the order of the help lines.
Stage = Literal["change", "outcome"]


@dataclass(frozen=True)
class Command:
    name: str  # the registered name when known (an alias is resolved), else as typed
    arg: str
    line: str  # as the agent wrote it, for the answer explaining a refusal


@dataclass(frozen=True)
class Reply:
    """An agent's reply split into its command block and the text after it."""

    commands: tuple[Command, ...] = ()
    text: str = ""

    def has(self, name: str) -> bool:
        return any(c.name == name for c in self.commands)

    def arg(self, name: str) -> str:
        return next((c.arg for c in reversed(self.commands) if c.name == name), "")

    def given(self, name: str) -> list[Command]:
        return [c for c in self.commands if c.name == name]


@dataclass(frozen=True)
class Situation:
    """What the checks need to know about the ticket and the writer."""

    agent: Agent
    directory: Directory
    queues: Collection[str]
    status: str
    review_pending: bool = False
    is_lead: bool = False
    # for checks that look at other tickets (#merge HD-N, #link HD-N): read only
    ticket_id: int = 0
    session: Session | None = None
    settings: Settings | None = None
    # which other tickets the agent may name (the desk's access rule); None: any
    may_see: Callable[[int], bool] | None = None


@dataclass
class Check:
    errors: list[str] = field(default_factory=list)
    # what a check found an argument to mean, by command name, for its apply
    # (#assign me: the writer's agent name)
    resolved: dict[str, str] = field(default_factory=dict)

    def fail(self, command: Command, why: str) -> None:
        self.errors.append(f"{command.line}: {why}")

    @property
    def assignee(self) -> str:
        return self.resolved.get("assign", "")


class AgentCommand:
    """One #command. Subclass, set the class attributes, override `check` and `apply`
    where the defaults do not fit, and decorate with `@register`."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    argument: ClassVar[Argument] = "none"
    usage: ClassVar[str] = ""  # the argument as the help line shows it, e.g. "NAME|me"
    summary: ClassVar[str] = ""  # what it does, for the help line
    choices: ClassVar[tuple[str, ...]] = ()  # the only arguments accepted (any case)
    max_length: ClassVar[int] = 0  # of the argument; 0: no limit
    repeatable: ClassVar[bool] = False  # may be given again with another argument
    stage: ClassVar[Stage] = "change"
    # commands that, given together with this one, are not applied (it decides instead)
    overrides: ClassVar[tuple[str, ...]] = ()

    def help_line(self) -> str:
        usage = self.usage or "|".join(self.choices)
        return f"{f'#{self.name} {usage}'.rstrip():<19} {self.summary}".rstrip()

    def refuse_argument(self, command: Command) -> str:
        """Why the argument is unacceptable whatever the ticket, "" when it is fine (its
        presence or absence is already checked)."""
        if self.choices and command.arg.lower() not in self.choices:
            return f"{self.name} must be one of {', '.join(self.choices)}"
        if self.max_length and len(command.arg) > self.max_length:
            return f"too long ({self.max_length} characters at most)"
        return ""

    def offered(self, sit: Situation) -> bool:
        """Whether a door with buttons (the web desk) offers this command to the writer
        on this ticket now; `check` still decides when it is given anyway."""
        return True

    def check(self, command: Command, sit: Situation, result: Check) -> None:
        """Fail `result` with what makes this command impossible here (the argument
        is already known to be well formed)."""

    def apply(self, act: Action, given: list[Command]) -> str | None:
        """Carry out the command (`given`: each time it appears in the reply, in order);
        an "outcome" command returns a summary when the reply ends with it."""
        return None


_REGISTRY: dict[str, AgentCommand] = {}  # every name and alias -> its command


def register(cls: type[AgentCommand]) -> type[AgentCommand]:
    """Class decorator: make the command known under its name and aliases. A name
    already taken is an error at import, never a silent replacement."""
    command = cls()
    names = (cls.name, *cls.aliases)
    for name in names:
        if not _NAME.match(name):
            raise TypeError(f"{cls.__name__}: #{name} is not a valid command name")
        taken = _REGISTRY.get(name)
        if taken is not None:
            raise DuplicateCommandError(
                f"#{name} of {cls.__qualname__} is already registered by "
                f"{type(taken).__qualname__}")
    if not cls.summary and not cls.usage and not cls.choices:
        raise TypeError(f"{cls.__name__}: #{cls.name} has no help")
    for name in names:
        _REGISTRY[name] = command
    return cls


def unregister(name: str) -> None:
    """Forget a command and its aliases (for tests that register their own)."""
    command = _REGISTRY.get(name)
    for key in [k for k, v in _REGISTRY.items() if v is command]:
        del _REGISTRY[key]


def lookup(name: str) -> AgentCommand | None:
    return _REGISTRY.get(name.lower())


def commands() -> Iterator[AgentCommand]:
    """Each registered command once, in registration order."""
    seen: set[int] = set()
    for command in _REGISTRY.values():
        if id(command) not in seen:
            seen.add(id(command))
            yield command


def cheat_sheet() -> str:
    """The help an agent gets: one line per command."""
    return "\n".join(c.help_line() for c in commands())


@dataclass(frozen=True)
class Conflict:
    """Commands that make no sense together: `first` with any of `others`, unless
    `unless(reply)` says this combination is fine."""

    first: str
    others: tuple[str, ...]
    message: str
    unless: Callable[[Reply], bool] = lambda reply: False


_CONFLICTS: list[Conflict] = []


def forbid(*conflicts: Conflict) -> None:
    for conflict in conflicts:
        for name in (conflict.first, *conflict.others):
            if lookup(name) is None:
                raise TypeError(f"conflict with #{name}, which is not registered")
        _CONFLICTS.append(conflict)


def to_apply(reply: Reply, stage: Stage) -> Iterator[tuple[AgentCommand, list[Command]]]:
    """The commands of `reply` in `stage` that are carried out, each with every time it
    was given: in registration order, leaving out those another one given overrides."""
    present = [c for c in commands() if reply.has(c.name)]
    overridden = {name for c in present for name in c.overrides}
    for known in present:
        if known.stage == stage and known.name not in overridden:
            yield known, reply.given(known.name)


def command(name: str, arg: str = "") -> Command:
    """One command as a door other than mail gives it (a CLI option, a form field)."""
    known = lookup(name)
    canonical = known.name if known else name.lower()
    return Command(canonical, arg, f"#{name} {arg}".rstrip())


def split(text: str) -> Reply:
    """Leading `#word ...` lines (blank lines between them allowed) and the rest."""
    lines = text.splitlines()
    found: list[Command] = []
    index = 0
    for index, line in enumerate(lines):  # noqa: B007 (index is used after the loop)
        stripped = line.strip()
        if not stripped:
            continue
        m = _COMMAND.match(stripped)
        if not m:
            break
        known = lookup(m.group(1))
        name = known.name if known else m.group(1).lower()
        found.append(Command(name, (m.group(2) or "").strip(), stripped))
    else:
        index = len(lines)
    return Reply(tuple(found), "\n".join(lines[index:]).strip())


def check(reply: Reply, sit: Situation) -> Check:
    """Every problem with the commands of `reply`; an empty `errors` means apply them all.
    A mail whose commands are not all valid applies none of them, so every problem is
    reported at once."""
    result = Check()
    seen: dict[str, str] = {}
    for given in reply.commands:
        known = lookup(given.name)
        if known is None:
            result.fail(given, f"unknown command #{given.name}")
            continue
        if known.argument == "required" and not given.arg:
            result.fail(given, "needs an argument")
            continue
        if known.argument == "none" and given.arg:
            result.fail(given, f"#{known.name} takes no argument")
            continue
        previous = seen.setdefault(given.name, given.arg)
        if not known.repeatable and previous != given.arg:
            result.fail(given, f"contradicts an earlier #{given.name} {previous}")
            continue
        why = known.refuse_argument(given) if given.arg else ""
        if why:
            result.fail(given, why)
        else:
            known.check(given, sit, result)
    for conflict in _CONFLICTS:
        if reply.has(conflict.first) and any(reply.has(o) for o in conflict.others) \
                and not conflict.unless(reply):
            result.errors.append(conflict.message)
    return result
