"""Conditions: named predicates over one mail, compiled once from a rule's `when`.

Each condition answers `test(facts) -> bool` fast, and `why(facts)` in explain
mode says in words why it matched or not. The names an admin may use under
`when` are registered in CONDITIONS; a duplicate name is a startup error.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from helpdesk.rules.facts import BOOL_FIELDS, NUMBER_FIELDS, TEXT_FIELDS, Facts
from helpdesk.rules.matchers import (
    Contains,
    Equals,
    Matcher,
    Regex,
    SpecError,
    compile_matcher,
    gather,
    raise_all,
)

Path = tuple[str, ...]


class Condition(Protocol):
    cost: int

    def test(self, facts: Facts) -> bool: ...

    def why(self, facts: Facts) -> tuple[bool, str]: ...


@dataclass(frozen=True)
class TextCond:
    field: str
    matcher: Matcher
    cost: int

    def __post_init__(self) -> None:
        # the hot path: a closure per condition beats attribute lookups per call
        object.__setattr__(self, "test", _fast_text_test(self.field, self.matcher))

    def test(self, facts: Facts) -> bool:
        return self.matcher.test(facts.values(self.field), facts.folded(self.field),
                                 facts.budget)

    def why(self, facts: Facts) -> tuple[bool, str]:
        ok = self.test(facts)
        shown = _preview(facts.values(self.field))
        return ok, f"{self.field} {shown} {self.matcher.describe(ok)}"


@dataclass(frozen=True)
class HeaderCond:
    name: str
    matcher: Matcher
    cost: int = 3

    def test(self, facts: Facts) -> bool:
        return self.matcher.test(*facts.header(self.name), facts.budget)

    def why(self, facts: Facts) -> tuple[bool, str]:
        ok = self.test(facts)
        shown = _preview(facts.header(self.name)[0])
        return ok, f"header {self.name} {shown} {self.matcher.describe(ok)}"


@dataclass(frozen=True)
class BoolCond:
    field: str
    want: bool
    cost: int = 1

    def test(self, facts: Facts) -> bool:
        return facts.flag(self.field) == self.want

    def why(self, facts: Facts) -> tuple[bool, str]:
        ok = self.test(facts)
        return ok, f"{self.field} is {str(facts.flag(self.field)).lower()}"


@dataclass(frozen=True)
class NumberCond:
    field: str
    low: int | None
    high: int | None
    text: str
    cost: int = 1

    def test(self, facts: Facts) -> bool:
        value = facts.number(self.field)
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def why(self, facts: Facts) -> tuple[bool, str]:
        ok = self.test(facts)
        verb = "is" if ok else "is not"
        return ok, f"{self.field} {facts.number(self.field)} {verb} {self.text}"


@dataclass(frozen=True)
class HoursCond:
    want_open: bool
    cost: int = 2

    def test(self, facts: Facts) -> bool:
        return facts.within_hours() == self.want_open

    def why(self, facts: Facts) -> tuple[bool, str]:
        inside = facts.within_hours()
        return self.test(facts), f"arrived {'inside' if inside else 'outside'} business hours"


@dataclass(frozen=True)
class AllCond:
    children: tuple[Condition, ...]
    cost: int

    def test(self, facts: Facts) -> bool:
        return all(c.test(facts) for c in self.children)

    def why(self, facts: Facts) -> tuple[bool, str]:
        reasons = []
        for child in self.children:
            ok, reason = child.why(facts)
            if not ok:
                return False, reason
            reasons.append(reason)
        return True, "; ".join(reasons) if reasons else "no conditions"


@dataclass(frozen=True)
class AnyCond:
    children: tuple[Condition, ...]
    cost: int

    def test(self, facts: Facts) -> bool:
        return any(c.test(facts) for c in self.children)

    def why(self, facts: Facts) -> tuple[bool, str]:
        reasons = []
        for child in self.children:
            ok, reason = child.why(facts)
            if ok:
                return True, reason
            reasons.append(reason)
        return False, "none of: " + "; ".join(reasons)


@dataclass(frozen=True)
class NotCond:
    child: Condition
    cost: int

    def test(self, facts: Facts) -> bool:
        return not self.child.test(facts)

    def why(self, facts: Facts) -> tuple[bool, str]:
        ok, reason = self.child.why(facts)
        return not ok, f"not ({reason})"


def _fast_text_test(field: str, matcher: Matcher) -> Callable[[Facts], bool]:
    if isinstance(matcher, Equals) and not matcher.case:
        wanted = matcher.wanted
        return lambda facts: not wanted.isdisjoint(facts.folded(field))
    needles: tuple[str, ...] = ()
    if isinstance(matcher, Contains) and not matcher.case:
        needles = matcher.needles
    elif isinstance(matcher, Regex) and matcher.exact and matcher.folds:
        needles = matcher.required[0]  # nothing but literals: a substring test decides
    if needles:

        def contains(facts: Facts) -> bool:
            for value in facts.folded(field):
                for needle in needles:
                    if needle in value:
                        return True
            return False

        return contains
    test = matcher.test
    return lambda facts: test(facts.values(field), facts.folded(field), facts.budget)


def _preview(values: tuple[str, ...]) -> str:
    if not values:
        return "(none)"
    first = values[0].replace("\n", " ")
    shown = repr(first if len(first) <= 60 else first[:57] + "...")
    return shown if len(values) == 1 else f"{shown} (+{len(values) - 1} more)"


# -- compiling `when` tables -------------------------------------------------------

Builder = Callable[[str, Any, Path], Condition]
CONDITIONS: dict[str, Builder] = {}


def register_condition(name: str, builder: Builder) -> None:
    """Make `name` usable under `when`; registering a name twice is an error."""
    if name in CONDITIONS:
        raise RuntimeError(f"condition {name!r} registered twice")
    CONDITIONS[name] = builder


def compile_when(spec: Any, path: Path = ("when",)) -> Condition:
    """A `when` table: every key must hold (all of them).

    Raises SpecError, or SpecErrors with every faulty condition when there are several.
    """
    if not isinstance(spec, dict):
        raise SpecError(path, f"expected a table of conditions, got {spec!r}")
    errors: list[SpecError] = []
    children = [gather(errors, lambda k=key, v=value: _condition(k, v, (*path, k)))
                for key, value in spec.items()]
    raise_all(errors)
    return _all([c for c in children if c is not None])


def _condition(key: str, value: Any, path: Path) -> Condition:
    builder = CONDITIONS.get(key)
    if builder is None:
        raise SpecError(path, f"unknown condition{_suggest(key)}")
    return builder(key, value, path)


def _all(children: list[Condition]) -> Condition:
    if len(children) == 1:
        return children[0]
    ordered = tuple(sorted(children, key=lambda c: c.cost))  # cheap first; stable
    return AllCond(ordered, sum(c.cost for c in ordered))


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, CONDITIONS, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(CONDITIONS)})"


def _text(key: str, value: Any, path: Path) -> Condition:
    matcher = compile_matcher(value, path)
    cost = 2 + (4 if isinstance(matcher, Regex) and not matcher.required else 0)
    return TextCond(key, matcher, cost + (3 if key == "body" else 0))


def _header(key: str, value: Any, path: Path) -> Condition:
    if not isinstance(value, dict) or not value:
        raise SpecError(
            path, 'expected header."Name" = matcher, e.g. header."List-Id" = { exists = true }'
        )
    errors: list[SpecError] = []
    matchers = {name: gather(errors, lambda n=name, s=spec: compile_matcher(s, (*path, n)))
                for name, spec in value.items()}
    raise_all(errors)
    return _all([HeaderCond(name, m) for name, m in matchers.items() if m is not None])


def _bool(key: str, value: Any, path: Path) -> Condition:
    if not isinstance(value, bool):
        raise SpecError(path, f"must be true or false, got {value!r}")
    return BoolCond(key, value)


def _hours(key: str, value: Any, path: Path) -> Condition:
    if value not in ("in", "out"):
        raise SpecError(path, f'must be "in" or "out", got {value!r}')
    return HoursCond(value == "in")


def _combinator(key: str, value: Any, path: Path) -> Condition:
    if key == "not":
        child = compile_when(value, path)
        return NotCond(child, child.cost)
    if not isinstance(value, list) or not value:
        raise SpecError(path, f"expected a list of condition tables, got {value!r}")
    errors: list[SpecError] = []
    found = [gather(errors, lambda i=i, item=item: compile_when(item, (*path, str(i))))
             for i, item in enumerate(value)]
    raise_all(errors)
    children = [c for c in found if c is not None]
    if key == "all":
        return _all(children)
    return AnyCond(tuple(children), sum(c.cost for c in children))


def _register_builtins() -> None:
    for name in TEXT_FIELDS:
        register_condition(name, _text)
    for name in BOOL_FIELDS:
        register_condition(name, _bool)
    for name in NUMBER_FIELDS:
        register_condition(name, _number)
    register_condition("header", _header)
    register_condition("business_hours", _hours)
    for name in ("all", "any", "not"):
        register_condition(name, _combinator)


# -- numbers -----------------------------------------------------------------------

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
}
_BOUNDS = ("min", "max", "gt", "lt", "eq")


def _amount(value: Any, path: Path) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        digits = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = text[len(digits) :]
        if digits.isdigit() and unit in _UNITS:
            return int(digits) * _UNITS[unit]
    raise SpecError(path, f'expected a number like 1000 or "5MB", got {value!r}')


def _number(key: str, value: Any, path: Path) -> Condition:
    if not isinstance(value, dict):
        amount = _amount(value, path)
        return NumberCond(key, amount, amount, f"= {amount}")
    unknown = [k for k in value if k not in _BOUNDS]
    if unknown or not value:
        bad = (*path, unknown[0]) if unknown else path
        raise SpecError(bad, f"expected bounds among {', '.join(_BOUNDS)}")
    low, high, parts = None, None, []
    for bound, raw in value.items():
        amount = _amount(raw, (*path, bound))
        parts.append(f"{bound} {amount}")
        if bound in ("min", "gt", "eq"):
            low = max(low or 0, amount + (bound == "gt"))
        if bound in ("max", "lt", "eq"):
            new_high = amount - (bound == "lt")
            high = new_high if high is None else min(high, new_high)
    return NumberCond(key, low, high, " and ".join(parts))


_register_builtins()
