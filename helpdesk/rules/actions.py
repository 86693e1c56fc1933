"""What a matching rule does: a registry of named actions (set, assign, tags, spam, ack).

Each action is a key in a rule's table. It validates its value once at load
(`compile`, raising SpecError), says which decision fields it sets (`fields`,
for `final`) and writes them into the Outcome (`apply`). Registering a name
twice is a startup error, so a plug-in cannot silently replace a built-in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from helpdesk.config.agents import Directory
from helpdesk.config.priority import PRIORITIES
from helpdesk.rules import AssignRequest, RuleHit
from helpdesk.rules.assign import STRATEGIES
from helpdesk.rules.matchers import SpecError, gather, raise_all

FIELDS = ("category", "priority", "queue", "tags", "assign", "spam", "ack")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/ -]{0,99}$")


@dataclass(frozen=True)
class CompileEnv:
    """What actions validate against: agents, teams and (when declared) queues."""

    directory: Directory
    queues: frozenset[str] | None = None


@dataclass
class Outcome:
    """The decision being built, with who set what; later rules override per field."""

    values: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    final_by: dict[str, str] = field(default_factory=dict)
    hits: list[RuleHit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def allowed(self, name: str, rule: str) -> bool:
        owner = self.final_by.get(name)
        if owner is not None and owner != rule:
            self.notes.append(f"{name} not changed: made final by rule {owner!r}")
            return False
        return True

    def set(self, name: str, value: Any, shown: str, rule: str) -> None:
        if self.allowed(name, rule):
            self.values[name] = value
            self.hits.append(RuleHit(rule, name, shown))

    def add_tags(self, tags: tuple[str, ...], rule: str) -> None:
        if self.allowed("tags", rule):
            new = [t for t in tags if t not in self.tags]
            self.tags.extend(new)
            if new:
                self.hits.append(RuleHit(rule, "tags", ",".join(new)))

    def seal(self, names: frozenset[str], rule: str) -> None:
        for name in names:
            self.final_by.setdefault(name, rule)


class Action(Protocol):
    name: str

    def compile(self, value: Any, env: CompileEnv) -> Any: ...

    def fields(self, param: Any) -> frozenset[str]: ...

    def apply(self, param: Any, out: Outcome, rule: str) -> None: ...


ACTIONS: dict[str, Action] = {}


def register_action(action: Action) -> None:
    if action.name in ACTIONS:
        raise RuntimeError(f"action {action.name!r} registered twice")
    ACTIONS[action.name] = action


def _word(value: Any, path: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise SpecError(
            path, f"{what} must be a short name (letters, digits, _.:/ -), got {value!r}"
        )
    return value


def _tags(value: Any, path: tuple[str, ...]) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(_word(t, path, "a tag") for t in items)


class SetAction:
    """set = { category = "billing", priority = "high", queue = "billing", tags = [...] }"""

    name = "set"
    keys = ("category", "priority", "queue", "tags")

    def compile(self, value: Any, env: CompileEnv) -> dict[str, Any]:
        if not isinstance(value, dict) or not value:
            raise SpecError(("set",), 'expected a table like { priority = "high" }')
        errors: list[SpecError] = []
        out = {key: gather(errors, lambda k=key, v=item: self._one(k, v, env))
               for key, item in value.items()}
        raise_all(errors)
        return out

    def _one(self, key: str, item: Any, env: CompileEnv) -> Any:
        path = ("set", key)
        if key not in self.keys:
            raise SpecError(path, f"cannot set this (use {', '.join(self.keys)})")
        if key == "tags":
            return _tags(item, path)
        return self._check(key, _word(item, path, key), env, path)

    @staticmethod
    def _check(key: str, value: str, env: CompileEnv, path: tuple[str, ...]) -> str:
        if key == "priority" and value not in PRIORITIES:
            raise SpecError(path, f"{value!r} is not one of {', '.join(PRIORITIES)}")
        if key == "queue" and env.queues is not None and value not in env.queues:
            known = ", ".join(sorted(env.queues))
            raise SpecError(path, f"no queue {value!r} in helpdesk.toml (known: {known})")
        return value

    def fields(self, param: dict[str, Any]) -> frozenset[str]:
        return frozenset(param)

    def apply(self, param: dict[str, Any], out: Outcome, rule: str) -> None:
        for key, value in param.items():
            if key == "tags":
                out.add_tags(value, rule)
            else:
                out.set(key, value, value, rule)


class AssignAction:
    """assign = { agent = "alice" } or { team = "ops", strategy = "round_robin" }"""

    name = "assign"

    def compile(self, value: Any, env: CompileEnv) -> AssignRequest:
        if not isinstance(value, dict):
            raise SpecError(("assign",), 'expected { agent = "name" } or { team = "name" }')
        unknown = set(value) - {"agent", "team", "strategy"}
        if unknown:
            raise SpecError(
                ("assign", sorted(unknown)[0]), "unknown key (use agent, team, strategy)"
            )
        if ("agent" in value) == ("team" in value):
            raise SpecError(("assign",), "name either an agent or a team")
        if "agent" in value:
            return self._agent(value["agent"], env)
        return self._team(value["team"], value.get("strategy", "round_robin"), env)

    @staticmethod
    def _agent(name: Any, env: CompileEnv) -> AssignRequest:
        path = ("assign", "agent")
        agent = env.directory.agent(name) if isinstance(name, str) else None
        agent = agent or (env.directory.by_address(name) if isinstance(name, str) else None)
        if agent is None:
            raise SpecError(path, f"no agent {name!r} in agents.toml")
        return AssignRequest(agent=agent.name)

    @staticmethod
    def _team(name: Any, strategy: Any, env: CompileEnv) -> AssignRequest:
        if strategy not in STRATEGIES:
            raise SpecError(
                ("assign", "strategy"), f"{strategy!r} is not one of {', '.join(STRATEGIES)}"
            )
        team = env.directory.team(name) if isinstance(name, str) else None
        if team is None:
            raise SpecError(("assign", "team"), f"no team {name!r} in agents.toml")
        if not team.members:
            raise SpecError(("assign", "team"), f"team {name!r} has no agents")
        return AssignRequest(team=team.name, strategy=strategy, members=team.members)

    def fields(self, param: AssignRequest) -> frozenset[str]:
        return frozenset({"assign"})

    def apply(self, param: AssignRequest, out: Outcome, rule: str) -> None:
        out.set("assign", param, param.describe(), rule)


class TagsAction:
    """tags = ["vip", "billing"]: added to the ticket's tags."""

    name = "tags"

    def compile(self, value: Any, env: CompileEnv) -> tuple[str, ...]:
        return _tags(value, ("tags",))

    def fields(self, param: tuple[str, ...]) -> frozenset[str]:
        return frozenset({"tags"})

    def apply(self, param: tuple[str, ...], out: Outcome, rule: str) -> None:
        out.add_tags(param, rule)


class SpamAction:
    """spam = true: stored, not acknowledged, not notified."""

    name = "spam"

    def compile(self, value: Any, env: CompileEnv) -> bool:
        if not isinstance(value, bool):
            raise SpecError(("spam",), f"must be true or false, got {value!r}")
        return value

    def fields(self, param: bool) -> frozenset[str]:
        return frozenset({"spam"})

    def apply(self, param: bool, out: Outcome, rule: str) -> None:
        out.set("spam", param, str(param).lower(), rule)


class AckAction:
    """ack = "template-name" | false (send none) | true (the default acknowledgement)."""

    name = "ack"

    def compile(self, value: Any, env: CompileEnv) -> str | None:
        if value is True:
            return None
        if value is False:
            return ""
        return _word(value, ("ack",), "a template name")

    def fields(self, param: str | None) -> frozenset[str]:
        return frozenset({"ack"})

    def apply(self, param: str | None, out: Outcome, rule: str) -> None:
        shown = "default" if param is None else (param or "none")
        out.set("ack", param, shown, rule)


for _action in (SetAction(), AssignAction(), TagsAction(), SpamAction(), AckAction()):
    register_action(_action)
