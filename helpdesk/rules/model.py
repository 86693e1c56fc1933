"""A compiled rule and a rule set: what the loader builds and the engine runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from helpdesk.config.agents import EMPTY, Directory
from helpdesk.config.settings import RulesSection
from helpdesk.hours import BusinessHours
from helpdesk.rules.actions import Action
from helpdesk.rules.conditions import Condition
from helpdesk.rules.facts import Facts

APPLY_TO = ("new", "followups", "all")
DEFAULT_TIME_BUDGET: float = RulesSection.model_fields["time_budget"].default


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


def _test(rule: Rule) -> Callable[[Facts], bool] | None:
    return rule.when.test if rule.when is not None else None


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    directory: Directory = EMPTY
    # [business_hours] of helpdesk.toml, and per-queue overrides
    hours: BusinessHours | None = None
    queue_hours: dict[str, BusinessHours] = field(default_factory=dict)
    sources: tuple[Path, ...] = ()
    # seconds the regexes of all rules may take per mail ([rules] time_budget)
    time_budget: float = DEFAULT_TIME_BUDGET

    # the engine's hot loop: (test or None, rule) for the rules of each kind of mail
    @cached_property
    def for_new(self) -> tuple[tuple[Callable[[Facts], bool] | None, Rule], ...]:
        return tuple((_test(r), r) for r in self.rules if r.applies(False))

    @cached_property
    def for_followups(self) -> tuple[tuple[Callable[[Facts], bool] | None, Rule], ...]:
        return tuple((_test(r), r) for r in self.rules if r.applies(True))

    def hours_for(self, queue: str) -> BusinessHours | None:
        return self.queue_hours.get(queue, self.hours)

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)
