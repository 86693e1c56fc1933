"""The registry of agents' #commands: one registered class per command, a duplicate name
refused, the help built from it, and a command registered anywhere usable by mail with no
other place edited."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage

import pytest

from helpdesk.agents import commands as agent_commands
from helpdesk.agents import registry as agent_registry
from helpdesk.agents.actions import Action
from helpdesk.agents.registry import AgentCommand, Command, register, unregister
from helpdesk.config.agents import Agent, Directory
from helpdesk.config.settings import Settings
from helpdesk.errors import DuplicateCommandError, HelpdeskError
from tests import agent_mails
from tests.agent_desk import body, mails_to, reply_to, wait_mails_to
from tests.helpers import DaemonThread, RelaySink, make_mail, send, wait_ticket

CAROL = "carol@customer.test"


class Escalate(AgentCommand):
    """A command none of the helpdesk's modules knows of."""

    name, aliases, summary = "escalate", ("asap",), "critical priority, tagged escalated"

    def apply(self, act: Action, given: list[Command]) -> None:
        act.change("priority", "critical")
        act.ticket.tags = sorted({*act.ticket.tags, "escalated"})
        act.event("escalated")


@contextmanager
def registered(cls: type[AgentCommand]) -> Iterator[None]:
    register(cls)
    try:
        yield
    finally:
        unregister(cls.name)


def _situation() -> agent_commands.Situation:
    alice = Agent(name="alice", email="alice@staff.test")
    return agent_commands.Situation(agent=alice, directory=Directory(agents=(alice,)),
                                    queues={"support"}, status="open")


def test_a_name_or_alias_registered_twice_is_refused_and_the_first_kept() -> None:
    assign = agent_registry.lookup("assign")

    class Assign(AgentCommand):
        name, summary = "assign", "a second #assign"

    class Shut(AgentCommand):
        name, aliases, summary = "shut", ("close",), "an alias taken by #close"

    for cls in (Assign, Shut):
        with pytest.raises(DuplicateCommandError, match="already registered") as raised:
            register(cls)
        assert isinstance(raised.value, HelpdeskError)
    assert agent_registry.lookup("assign") is assign
    assert agent_registry.lookup("shut") is None  # nothing of a refused class is kept


def test_every_registered_command_has_its_help_line_in_the_cheat_sheet() -> None:
    sheet = agent_commands.cheat_sheet().splitlines()
    names = [c.name for c in agent_registry.commands()]
    assert len(names) == len(sheet) == len(set(names))
    # the built-in ones and those of the modules that add theirs (KB, ticket operations)
    assert {"assign", "status", "close", "approve", "kb", "publish", "merge", "split",
            "link", "reply", "time"} <= set(names)
    for command, line in zip(agent_registry.commands(), sheet, strict=True):
        assert line == command.help_line() and line.startswith(f"#{command.name}")
        assert line != f"#{command.name}", f"#{command.name} has no help"
        # what other commands say about it names only commands that exist
        assert set(command.overrides) <= set(names)

    class Mute(AgentCommand):
        name = "mute"

    with pytest.raises(TypeError, match="no help"):
        register(Mute)


def test_a_command_registered_anywhere_is_parsed_checked_and_in_the_help() -> None:
    sit = _situation()
    unknown = agent_commands.check(agent_commands.split("#asap\n\nOn it."), sit)
    assert unknown.errors == ["#asap: unknown command #asap"]
    with registered(Escalate):
        reply = agent_commands.split("#ASAP\n#tag vip\n\nOn it.")
        assert [c.name for c in reply.commands] == ["escalate", "tag"]  # the alias resolved
        assert agent_commands.check(reply, sit).errors == []
        refused = agent_commands.check(agent_commands.split("#escalate now"), sit)
        assert refused.errors == ["#escalate now: #escalate takes no argument"]
        assert "#escalate           critical priority" in agent_commands.cheat_sheet()
    # gone again: unknown as before, and out of the help
    assert agent_commands.check(agent_commands.split("#escalate"), sit).errors == [
        "#escalate: unknown command #escalate"]
    assert "#escalate" not in agent_commands.cheat_sheet()


def _alice(daemon: DaemonThread, note: EmailMessage, typed: str) -> None:
    to = reply_to(note)
    send(daemon.port, agent_mails.gmail(typed=typed, sender="Alice <alice@staff.test>", to=to,
                                        original=note),
         sender="alice@staff.test", rcpts=[to])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_command_registered_in_a_test_works_by_mail(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail(subject="Printer on fire"))
    note = wait_mails_to(relay, "alice@staff.test", 1)[0]

    # unknown: refused and explained as any unknown command is
    _alice(daemon, note, "#escalate\n\nOn it.")
    refused = body(wait_mails_to(relay, "alice@staff.test", 2)[1])
    assert "#escalate: unknown command #escalate" in refused
    assert "#status open|pending|resolved|closed" in refused and "#escalate" not in \
        refused.split("Valid commands", 1)[1]

    with registered(Escalate):
        _alice(daemon, note, "#escalate now")
        refused = body(wait_mails_to(relay, "alice@staff.test", 3)[2])
        assert "#escalate now: #escalate takes no argument" in refused
        assert "#escalate           critical priority, tagged escalated" in refused

        _alice(daemon, note, "#asap\n#tag vip\n\nHi Carol, we are on it.")
        t = wait_ticket(settings, 1, lambda t: t["priority"] == "critical", "escalated")
    assert (t["status"], t["tags"]) == ("pending", ["escalated", "vip"])
    assert [e["actor"] for e in t["events"] if e["kind"] == "escalated"] == ["alice"]
    answer = wait_mails_to(relay, CAROL, 2)[1]  # after the acknowledgement
    assert body(answer).startswith("Hi Carol, we are on it.")
    assert len(mails_to(relay, "alice@staff.test")) == 3  # nothing refused this time
