"""Value matchers: exact, contains, glob, regex, exists; case-insensitive by default.

Regular expressions use the `regex` package, compiled once per load, and every
search runs on input cut to MAX_MATCH_CHARS with a timeout: REGEX_TIMEOUT, or less
when the mail's Budget (all rules together, per mail) has less left. A search that
runs out of time ends the matcher's test (no further values are searched) and is
noted in the Budget, so the engine can refuse the rule and report it: a pattern over
200 headers costs one timeout, not 200. Searches are costly, so each pattern's required
literals (e.g. "invoice", "refund" for `invoice|refund`) are extracted once and
checked first with a plain substring test; most mails never reach the engine,
and a pattern that is only a list of literals never does.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from re import _parser as sre  # type: ignore[attr-defined]
from typing import Any, TypeVar

import regex

from helpdesk.errors import HelpdeskError

REGEX_TIMEOUT = 0.05  # seconds per search, at most
MAX_MATCH_CHARS = 100_000  # longer values are cut before matching
MATCHER_KEYS = ("equals", "exact", "contains", "glob", "regex", "exists")
_OPTION_KEYS = ("case_sensitive",)


class SpecError(HelpdeskError, ValueError):
    """A condition or action value is invalid; `path` locates it within the rule."""

    def __init__(self, path: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class SpecErrors(HelpdeskError, ValueError):
    """Several independent problems in one rule, so the admin sees them all in one run."""

    def __init__(self, errors: Sequence[SpecError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = tuple(errors)


T = TypeVar("T")


def gather(errors: list[SpecError], build: Callable[[], T]) -> T | None:
    """`build()`, or None with its problem(s) added to `errors`: check on, report all."""
    try:
        return build()
    except SpecErrors as err:
        errors.extend(err.errors)
    except SpecError as err:
        errors.append(err)
    return None


def raise_all(errors: Sequence[SpecError]) -> None:
    """Raise the problems found, if any: one as itself, several together."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SpecErrors(errors)


class Budget:
    """The time one mail's rule evaluation may still spend searching, and the patterns
    that ran out of it (in order)."""

    __slots__ = ("deadline", "seconds", "timeouts")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.timeouts: list[str] = []

    def search_limit(self) -> float:
        return min(REGEX_TIMEOUT, self.deadline - time.monotonic())


def fold(text: str) -> str:
    return text.casefold()


@dataclass(frozen=True)
class Equals:
    wanted: frozenset[str]
    case: bool = False

    def test(self, values: tuple[str, ...], folded: tuple[str, ...],
             budget: Budget | None = None) -> bool:
        return not self.wanted.isdisjoint(values if self.case else folded)

    def describe(self, ok: bool) -> str:
        return f"{'is' if ok else 'is not'} {_show(sorted(self.wanted))}"


@dataclass(frozen=True)
class Contains:
    needles: tuple[str, ...]
    case: bool = False

    def test(self, values: tuple[str, ...], folded: tuple[str, ...],
             budget: Budget | None = None) -> bool:
        for value in values if self.case else folded:
            for needle in self.needles:
                if needle in value:
                    return True
        return False

    def describe(self, ok: bool) -> str:
        return f"{'contains' if ok else 'does not contain'} {_show(self.needles)}"


@dataclass(frozen=True)
class Glob:
    patterns: tuple[str, ...]
    compiled: re.Pattern[str]

    def test(self, values: tuple[str, ...], folded: tuple[str, ...],
             budget: Budget | None = None) -> bool:
        return any(self.compiled.match(v) for v in values)

    def describe(self, ok: bool) -> str:
        return f"{'matches' if ok else 'does not match'} glob {_show(self.patterns)}"


@dataclass(frozen=True)
class Regex:
    pattern: str
    compiled: Any  # regex.Pattern
    # every group needs one of its literals in the (folded if `folds`) value
    required: tuple[tuple[str, ...], ...]
    folds: bool
    # the pattern is nothing but one group of literals: the substring test is the answer
    exact: bool

    def test(self, values: tuple[str, ...], folded: tuple[str, ...],
             budget: Budget | None = None) -> bool:
        texts = folded if self.folds else values
        for index, text in enumerate(texts):
            if self.required and not _has_all(text, self.required):
                continue
            if self.exact:
                return True
            found = self._search(values[index], budget)
            if found is None:  # out of time: the answer is unknown, stop searching
                return False
            if found:
                return True
        return False

    def _search(self, value: str, budget: Budget | None) -> bool | None:
        """Whether the pattern is found; None when the search ran out of time."""
        limit = REGEX_TIMEOUT if budget is None else budget.search_limit()
        try:
            if limit > 0:
                return self.compiled.search(value[:MAX_MATCH_CHARS], timeout=limit) is not None
        except TimeoutError:
            pass
        if budget is not None:
            budget.timeouts.append(self.pattern)
        return None

    def describe(self, ok: bool) -> str:
        return f"{'matches' if ok else 'does not match'} regex {self.pattern!r}"


def _has_all(text: str, groups: tuple[tuple[str, ...], ...]) -> bool:
    for group in groups:
        for literal in group:
            if literal in text:
                break
        else:
            return False
    return True


@dataclass(frozen=True)
class Exists:
    want: bool

    def test(self, values: tuple[str, ...], folded: tuple[str, ...],
             budget: Budget | None = None) -> bool:
        return bool(values) == self.want

    def describe(self, ok: bool) -> str:
        return "is present" if ok == self.want else "is absent"


Matcher = Equals | Contains | Glob | Regex | Exists


def _show(items: Any) -> str:
    items = list(items)
    return repr(items[0]) if len(items) == 1 else "any of " + ", ".join(map(repr, items))


def compile_matcher(spec: Any, path: tuple[str, ...]) -> Matcher:
    """A plain string (or list of strings) means equals; a table names one matcher."""
    if isinstance(spec, str | list):
        return _equals(spec, False, path)
    if not isinstance(spec, dict):
        raise SpecError(
            path, f'expected a string or a table like {{ contains = "..." }}, got {spec!r}'
        )
    unknown = [k for k in spec if k not in MATCHER_KEYS + _OPTION_KEYS]
    if unknown:
        raise SpecError(
            (*path, unknown[0]), f"unknown matcher (use one of {', '.join(MATCHER_KEYS)})"
        )
    kinds = [k for k in spec if k in MATCHER_KEYS]
    if len(kinds) != 1:
        raise SpecError(path, f"name exactly one matcher of {', '.join(MATCHER_KEYS)}")
    case = spec.get("case_sensitive", False)
    if not isinstance(case, bool):
        raise SpecError((*path, "case_sensitive"), "must be true or false")
    kind = kinds[0]
    return _BUILDERS[kind](spec[kind], case, (*path, kind))


def _strings(value: Any, path: tuple[str, ...]) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, str) for i in items):
        raise SpecError(path, f"expected a string or a list of strings, got {value!r}")
    return tuple(items)


def _equals(value: Any, case: bool, path: tuple[str, ...]) -> Matcher:
    items = _strings(value, path)
    return Equals(frozenset(items if case else (fold(i) for i in items)), case)


def _contains(value: Any, case: bool, path: tuple[str, ...]) -> Matcher:
    items = _strings(value, path)
    if any(not i for i in items):
        raise SpecError(path, "an empty string would match everything")
    return Contains(items if case else tuple(fold(i) for i in items), case)


def _glob(value: Any, case: bool, path: tuple[str, ...]) -> Matcher:
    items = _strings(value, path)
    joined = "|".join(f"(?:{fnmatch.translate(i)})" for i in items)
    return Glob(items, re.compile(joined, 0 if case else re.IGNORECASE | re.DOTALL))


def _exists(value: Any, case: bool, path: tuple[str, ...]) -> Matcher:
    if not isinstance(value, bool):
        raise SpecError(path, f"must be true or false, got {value!r}")
    return Exists(value)


def _regex(value: Any, case: bool, path: tuple[str, ...]) -> Matcher:
    if not isinstance(value, str) or not value:
        raise SpecError(path, f"expected a non-empty string, got {value!r}")
    flags = regex.V0 | (0 if case else regex.IGNORECASE)
    try:
        compiled = regex.compile(value, flags)
    except (regex.error, ValueError, OverflowError) as err:
        raise SpecError(path, f"invalid regular expression {value!r}: {err}") from None
    folds = not case or bool(compiled.flags & regex.IGNORECASE)
    required, exact = required_literals(value, 0 if case else re.IGNORECASE)
    if folds:
        required = tuple(tuple(fold(r) for r in group) for group in required)
    return Regex(value, compiled, required, folds, exact)


_BUILDERS = {
    "equals": _equals,
    "exact": _equals,
    "contains": _contains,
    "glob": _glob,
    "regex": _regex,
    "exists": _exists,
}


# -- required literals -----------------------------------------------------------


Groups = tuple[tuple[str, ...], ...]


def required_literals(pattern: str, flags: int = 0) -> tuple[Groups, bool]:
    """Groups of literals a match must contain (one of each group), and whether the
    pattern is nothing but the one group.

    Conservative: ((), False) whenever the pattern uses anything not understood
    (local flag groups, syntax only the `regex` package knows, ...).
    """
    try:
        parsed = sre.parse(pattern, flags)
    except Exception:  # regex-only syntax: no prefilter
        return (), False
    if parsed.state.flags & (re.VERBOSE | re.LOCALE):
        return (), False
    try:
        groups = _required(list(parsed))
    except _GiveUp:
        return (), False
    exact = _only_literals(list(parsed)) and len(groups) == 1
    return groups, exact


class _GiveUp(HelpdeskError):
    pass


def _only_literals(items: list[Any]) -> bool:
    if len(items) == 1 and items[0][0] is sre.BRANCH:
        return all(_literal_run(list(alt)) for alt in items[0][1][1])
    return _literal_run(items)


def _literal_run(items: list[Any]) -> bool:
    return bool(items) and all(op is sre.LITERAL for op, _ in items)


def _required(items: list[Any]) -> Groups:
    """Every group found in a sequence must be satisfied (a conjunction)."""
    candidates: list[tuple[str, ...]] = []
    run: list[str] = []
    for op, arg in items:
        if op is sre.LITERAL:
            run.append(chr(arg))
            continue
        if run:
            candidates.append(("".join(run),))
            run = []
        candidates += _required_of(op, arg)
    if run:
        candidates.append(("".join(run),))
    # longest literals first: the likeliest to fail fast
    return tuple(sorted(dict.fromkeys(candidates), key=lambda g: -min(len(s) for s in g)))


def _required_of(op: Any, arg: Any) -> Groups:
    if op is sre.SUBPATTERN:
        _group, add_flags, del_flags, sub = arg
        if add_flags or del_flags:
            raise _GiveUp
        return _required(list(sub))
    if op is sre.BRANCH:
        # one alternative must match: its strongest group is a necessary disjunct
        found = [_required(list(alt)) for alt in arg[1]]
        if not all(found):
            return ()
        return (tuple(dict.fromkeys(s for groups in found for s in groups[0])),)
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None)):
        low, _high, sub = arg
        return _required(list(sub)) if low >= 1 else ()
    if op is getattr(sre, "ATOMIC_GROUP", None):
        return _required(list(arg))
    return ()
