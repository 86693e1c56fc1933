"""The agents and teams of config/agents.toml, validated into frozen dataclasses.

    [[agent]]
    name = "alice"                         # the login: commands, history, #assign alice
    display_name = "Alice Agent"           # optional: what customers and mails show
    email = "alice@staff.test"
    alternates = ["a.smith@staff.test"]   # other addresses she writes from
    teams = ["support", "ops"]
    role = "lead"                          # "agent" (the default), "lead" or "admin"

    [[team]]
    name = "support"
    lead = "lisa"
    escalation = "ops"                     # optional: team that takes escalations

A team exists when a [[team]] declares it or any agent lists it. Errors raise
AgentsError naming the file, the entry and the field. Pure apart from `load`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpdesk.config.settings import Settings
from helpdesk.errors import ConfigError

ROLES = ("agent", "lead", "admin")
_AGENT_KEYS = {"name", "display_name", "email", "alternates", "teams", "role"}
_TEAM_KEYS = {"name", "lead", "escalation"}


class AgentsError(ConfigError):
    """agents.toml is invalid: the message names the file, entry and field."""


@dataclass(frozen=True)
class Agent:
    name: str
    email: str
    alternates: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    role: str = "agent"
    display_name: str = ""

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.email, *self.alternates)

    @property
    def shown_name(self) -> str:
        """The name people see in mail (From display names, sign-offs): the display
        name, or the login when agents.toml gives none."""
        return self.display_name or self.name


@dataclass(frozen=True)
class Team:
    name: str
    lead: str = ""
    escalation: str = ""
    # agent names in file order: the order round-robin walks
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class Directory:
    """All agents and teams, with lookups; immutable once built."""

    agents: tuple[Agent, ...] = ()
    teams: tuple[Team, ...] = ()
    source: Path | None = None
    _by_name: dict[str, Agent] = field(default_factory=dict, repr=False, compare=False)
    _by_address: dict[str, Agent] = field(default_factory=dict, repr=False, compare=False)
    _teams: dict[str, Team] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name.update({a.name: a for a in self.agents})
        for agent in self.agents:
            for address in agent.addresses:
                self._by_address[address.lower()] = agent
        self._teams.update({t.name: t for t in self.teams})

    def agent(self, name: str) -> Agent | None:
        return self._by_name.get(name)

    def by_address(self, address: str) -> Agent | None:
        """The agent writing from this address (primary or alternate), any case."""
        return self._by_address.get(address.strip().lower())

    def is_agent_address(self, address: str) -> bool:
        return self.by_address(address) is not None

    def team(self, name: str) -> Team | None:
        return self._teams.get(name)

    def team_members(self, name: str) -> tuple[str, ...]:
        team = self._teams.get(name)
        return team.members if team else ()

    def team_lead(self, name: str) -> Agent | None:
        """The lead a [[team]] names; see lead_of for the lead everyone uses."""
        team = self._teams.get(name)
        return self._by_name.get(team.lead) if team and team.lead else None

    def lead_of(self, team: str) -> Agent | None:
        """The team's lead: the one its [[team]] names; failing that, its first member
        with role lead. The one rule for reviews, escalations and surveys alike."""
        lead = self.team_lead(team)
        if lead is not None:
            return lead
        members = (self._by_name.get(n) for n in self.team_members(team))
        return next((a for a in members if a is not None and a.role == "lead"), None)


EMPTY = Directory()

# What the pipeline and the scheduler are given: the directory in force now. The
# daemon hands both the rules holder's, so a reload (HUP, a file change) refreshes
# agents and rules together and a bad edit keeps the last good set for both.
DirectorySource = Callable[[], Directory]


def team_of(settings: Settings, queue: str) -> str:
    """The team working a queue: its [queue.NAME] team, else the team named like it."""
    section = settings.queue.get(queue)
    return section.team if section and section.team else queue


def path_for(settings: Settings) -> Path:
    return settings.beside_config(settings.paths.agents, "agents.toml")


def fixed(directory: Directory) -> DirectorySource:
    """A source that never changes (a one-off command, a pipeline without rules)."""
    return lambda: directory


def load(path: Path) -> Directory:
    """Read and validate agents.toml; a missing file is an empty directory."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Directory(source=path)
    except tomllib.TOMLDecodeError as err:
        raise AgentsError(f"{path}: not valid TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise AgentsError(f"{path}: cannot read: {err}") from None
    try:
        return build(data, source=path)
    except AgentsError as err:
        raise AgentsError(f"{path}: {err}") from None


def build(data: Mapping[str, Any], source: Path | None = None) -> Directory:
    """Validate a parsed agents.toml mapping into a Directory."""
    unknown = set(data) - {"agent", "team"}
    if unknown:
        raise AgentsError(f"{sorted(unknown)[0]}: unknown table (expected [[agent]] or [[team]])")
    agents = tuple(_agent(i, e) for i, e in enumerate(_entries(data, "agent")))
    _check_unique(agents)
    declared = [_team_entry(i, e) for i, e in enumerate(_entries(data, "team"))]
    teams = _teams(agents, declared)
    return Directory(agents, teams, source)


def _entries(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    items = data.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise AgentsError(f"{key}: must be written as [[{key}]] tables")
    return items


def _where(kind: str, index: int, entry: Mapping[str, Any]) -> str:
    name = entry.get("name")
    return f"{kind} {name!r}" if isinstance(name, str) and name else f"{kind} #{index + 1}"


def _text(where: str, entry: Mapping[str, Any], key: str, required: bool = False) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str):
        raise AgentsError(f"{where}: {key}: must be a string (got {value!r})")
    if required and not value.strip():
        raise AgentsError(f"{where}: {key}: is required")
    return value.strip()


def _strings(where: str, entry: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise AgentsError(f"{where}: {key}: must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _address(where: str, key: str, value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or " " in value:
        raise AgentsError(f"{where}: {key}: {value!r} is not an email address")
    return value


def _agent(index: int, entry: Mapping[str, Any]) -> Agent:
    where = _where("agent", index, entry)
    unknown = set(entry) - _AGENT_KEYS
    if unknown:
        raise AgentsError(f"{where}: {sorted(unknown)[0]}: unknown field (misspelt?)")
    name = _text(where, entry, "name", required=True)
    email = _address(where, "email", _text(where, entry, "email", required=True))
    alternates = tuple(
        _address(where, "alternates", a) for a in _strings(where, entry, "alternates")
    )
    role = _text(where, entry, "role") or "agent"
    if role not in ROLES:
        raise AgentsError(f"{where}: role: {role!r} is not one of {', '.join(ROLES)}")
    display_name = _text(where, entry, "display_name")
    if any(not c.isprintable() for c in display_name):
        raise AgentsError(f"{where}: display_name: must be one line of printable text")
    return Agent(name, email, alternates, _strings(where, entry, "teams"), role, display_name)


def _check_unique(agents: tuple[Agent, ...]) -> None:
    names: set[str] = set()
    owners: dict[str, str] = {}
    for agent in agents:
        if agent.name in names:
            raise AgentsError(f"agent {agent.name!r}: name: defined twice")
        names.add(agent.name)
        for address in agent.addresses:
            other = owners.setdefault(address.lower(), agent.name)
            if other != agent.name:
                raise AgentsError(
                    f"agent {agent.name!r}: email: {address!r} already belongs to {other!r}"
                )


def _team_entry(index: int, entry: Mapping[str, Any]) -> Team:
    where = _where("team", index, entry)
    unknown = set(entry) - _TEAM_KEYS
    if unknown:
        raise AgentsError(f"{where}: {sorted(unknown)[0]}: unknown field (misspelt?)")
    return Team(
        _text(where, entry, "name", required=True),
        _text(where, entry, "lead"),
        _text(where, entry, "escalation"),
    )


def _teams(agents: tuple[Agent, ...], declared: list[Team]) -> tuple[Team, ...]:
    names = {a.name for a in agents}
    duplicate = _first_duplicate([t.name for t in declared])
    if duplicate:
        raise AgentsError(f"team {duplicate!r}: name: defined twice")
    order = list(dict.fromkeys([t.name for t in declared] + [t for a in agents for t in a.teams]))
    by_name = {t.name: t for t in declared}
    teams = []
    for name in order:
        base = by_name.get(name, Team(name))
        if base.lead and base.lead not in names:
            raise AgentsError(f"team {name!r}: lead: no agent named {base.lead!r}")
        if base.escalation and base.escalation not in order:
            raise AgentsError(f"team {name!r}: escalation: no team named {base.escalation!r}")
        members = tuple(a.name for a in agents if name in a.teams)
        teams.append(Team(name, base.lead, base.escalation, members))
    return tuple(teams)


def _first_duplicate(names: list[str]) -> str:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return ""
