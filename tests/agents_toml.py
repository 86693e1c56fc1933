"""agents.toml for the tests: each test lists the agents and teams its scenario needs;
every agent's address is name@staff.test, so a test reads who is who from the names."""

from __future__ import annotations


def agent(name: str, *teams: str, role: str = "", alternates: tuple[str, ...] = ()) -> str:
    lines = ["[[agent]]", f'name = "{name}"', f'email = "{name}@staff.test"']
    if alternates:
        lines.append("alternates = [" + ", ".join(f'"{a}"' for a in alternates) + "]")
    lines.append("teams = [" + ", ".join(f'"{t}"' for t in teams) + "]")
    if role:
        lines.append(f'role = "{role}"')
    return "\n".join(lines) + "\n"


def team(name: str, lead: str) -> str:
    return f'[[team]]\nname = "{name}"\nlead = "{lead}"\n'


def agents_toml(*entries: str) -> str:
    return "\n".join(entries)
