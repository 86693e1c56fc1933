"""A compiled rule and a rule set: what the loader builds and the engine runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpdesk.agents import EMPTY, Directory
from helpdesk.hours import BusinessHours
from helpdesk.rules.actions import Action
from helpdesk.rules.conditions import Condition

APPLY_TO = ("new", "followups", "all")


@dataclass(frozen=True)
class Rule:
    name: str
    when: Condition | None = None
    actions: tuple[tuple[Action, Any], ...] = ()
    # decision fields later rules may not change
    final: frozenset[str] = frozenset()
    stop: bool = False
    apply_to: str = "new"
    source: Path | None = None
    line: int | None = None
    description: str = ""

    def applies(self, is_reply: bool) -> bool:
        if self.apply_to == "all":
            return True
        return is_reply == (self.apply_to == "followups")


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    directory: Directory = EMPTY
    # [business_hours] of helpdesk.toml, and per-queue overrides
    hours: BusinessHours | None = None
    queue_hours: dict[str, BusinessHours] = field(default_factory=dict)
    sources: tuple[Path, ...] = ()

    def hours_for(self, queue: str) -> BusinessHours | None:
        return self.queue_hours.get(queue, self.hours)

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)
