"""Read rules.toml (and rules.d/*.toml, in name order) into a validated, compiled RuleSet.

Every problem becomes a Problem naming the file, the line where it can be found,
the rule and the field; `load_rules` raises RuleSetError carrying all of them.
Regular expressions are compiled here, once per load.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpdesk.config.agents import EMPTY, Directory
from helpdesk.errors import RuleError
from helpdesk.hours import BusinessHours
from helpdesk.rules.actions import ACTIONS, FIELDS, Action, CompileEnv
from helpdesk.rules.conditions import compile_when
from helpdesk.rules.matchers import SpecError, SpecErrors, gather, raise_all
from helpdesk.rules.model import APPLY_TO, DEFAULT_TIME_BUDGET, Rule, RuleSet

MODIFIERS = ("name", "description", "when", "stop", "final", "apply_to", "enabled")
_TOML_LINE = re.compile(r"at line (\d+)")


@dataclass(frozen=True)
class Problem:
    file: Path | None
    line: int | None
    rule: str
    field: str
    message: str

    def __str__(self) -> str:
        where = str(self.file or "<rules>") + (f":{self.line}" if self.line else "")
        rule = f" rule {self.rule!r}:" if self.rule else ""
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{rule}{field} {self.message}"


class RuleSetError(RuleError):
    """The rules cannot be loaded; `problems` lists each one (file, line, rule, field)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def rule_files(rules: Path, rules_dir: Path) -> list[Path]:
    """rules.toml if it exists, then every *.toml in rules.d in name order."""
    files = [rules] if rules.is_file() else []
    if rules_dir.is_dir():
        files += sorted(p for p in rules_dir.glob("*.toml") if p.is_file())
    return files


def load_rules(
    files: Iterable[Path],
    *,
    directory: Directory = EMPTY,
    queues: Iterable[str] | None = None,
    hours: BusinessHours | None = None,
    queue_hours: dict[str, BusinessHours] | None = None,
    time_budget: float = DEFAULT_TIME_BUDGET,
) -> RuleSet:
    """Compile the rules of `files`, in order; raises RuleSetError listing every problem."""
    env = CompileEnv(directory, frozenset(queues) if queues is not None else None)
    files = list(files)
    rules: list[Rule] = []
    problems: list[Problem] = []
    for path in files:
        text, data = _read(path, problems)
        if data is not None:
            rules += _compile_file(path, text, data, env, problems)
    _check_unique_names(rules, problems)
    if problems:
        raise RuleSetError(problems)
    return RuleSet(tuple(r for r in rules), directory, hours, dict(queue_hours or {}),
                   tuple(files), time_budget)


def _read(path: Path, problems: list[Problem]) -> tuple[str, dict[str, Any] | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        problems.append(Problem(path, None, "", "", f"cannot read: {err}"))
        return "", None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        found = _TOML_LINE.search(str(err))
        line = int(found.group(1)) if found else None
        problems.append(Problem(path, line, "", "", f"not valid TOML: {err}"))
        return text, None


def _compile_file(
    path: Path, text: str, data: dict[str, Any], env: CompileEnv, problems: list[Problem]
) -> list[Rule]:
    unknown = [k for k in data if k != "rule"]
    if unknown:
        line = _find_line(text.splitlines(), 0, len(text.splitlines()), unknown[0])
        problems.append(Problem(path, line, "", unknown[0], "unknown table (write [[rule]])"))
    entries = data.get("rule", [])
    if not isinstance(entries, list):
        problems.append(Problem(path, None, "", "rule", "write each rule as a [[rule]] table"))
        return []
    lines = text.splitlines()
    blocks = _rule_blocks(lines)
    rules = []
    for index, entry in enumerate(entries):
        start, end = blocks[index] if index < len(blocks) else (0, len(lines))
        try:
            rule = _compile_rule(entry, index, env)
        except (SpecError, SpecErrors) as err:
            found = err.errors if isinstance(err, SpecErrors) else (err,)
            name = _rule_name(entry, index)
            located = [(_find_field(lines, start, end, e.path), e) for e in found]
            # in the order they appear in the file, as an editor shows them
            located.sort(key=lambda pair: pair[0] or 0)
            problems += [Problem(path, line, name, ".".join(e.path), e.message)
                         for line, e in located]
            continue
        if rule is not None:
            rules.append(_located(rule, path, start + 1 if blocks else None))
    return rules


def _located(rule: Rule, path: Path, line: int | None) -> Rule:
    return Rule(
        rule.name,
        rule.when,
        rule.actions,
        rule.final,
        rule.stop,
        rule.apply_to,
        path,
        line,
        rule.description,
    )


def _rule_name(entry: Any, index: int) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return name if isinstance(name, str) and name else f"#{index + 1}"


def _compile_rule(entry: Any, index: int, env: CompileEnv) -> Rule | None:
    """The rule of one [[rule]] table; raises SpecError, or SpecErrors listing every
    problem found in it (each key is checked on its own, so one run shows them all)."""
    if not isinstance(entry, dict):
        raise SpecError((), "write each rule as a [[rule]] table")
    errors: list[SpecError] = []
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(SpecError(("name",), "every rule needs a name"))
    known = ", ".join((*MODIFIERS, *ACTIONS))
    errors += [SpecError((k,), f"unknown key (known: {known})")
               for k in entry if k not in MODIFIERS and k not in ACTIONS]
    actions, refused = _actions(entry, env, errors)
    stop = gather(errors, lambda: _flag(entry, "stop", False))
    enabled = gather(errors, lambda: _flag(entry, "enabled", True))
    when = gather(errors, lambda: compile_when(entry["when"])) if "when" in entry else None
    sets = frozenset().union(*(a.fields(p) for a, p in actions)) if actions else frozenset()
    # with an action refused, what the rule sets is unknown: check only final's form
    final = gather(errors, lambda: _final(entry.get("final", False), sets, not refused))
    apply_to = gather(errors, lambda: _apply_to(entry.get("apply_to", "new")))
    if stop is False and not any(k in ACTIONS for k in entry):  # None: stop itself is wrong
        errors.append(SpecError((), f"does nothing: give it an action ({', '.join(ACTIONS)}) "
                                    "or stop"))
    raise_all(errors)
    rule = Rule(
        str(name).strip(),
        when,
        actions,
        final or frozenset(),
        bool(stop),
        str(apply_to),
        description=str(entry.get("description", "")),
    )
    return rule if enabled else None


def _actions(entry: dict[str, Any], env: CompileEnv, errors: list[SpecError]
             ) -> tuple[tuple[tuple[Action, Any], ...], bool]:
    """The rule's actions that compile, and whether any was refused (added to `errors`)."""
    actions = []
    for key, value in entry.items():
        if key in ACTIONS:
            before = len(errors)
            param = gather(errors, lambda k=key, v=value: ACTIONS[k].compile(v, env))
            if len(errors) == before:  # a valid param may be None (ack = true)
                actions.append((ACTIONS[key], param))
    return tuple(actions), len(actions) < sum(k in ACTIONS for k in entry)


def _flag(entry: dict[str, Any], key: str, default: bool) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        raise SpecError((key,), f"must be true or false, got {value!r}")
    return value


def _final(value: Any, sets: frozenset[str], check_sets: bool = True) -> frozenset[str]:
    if value is True:
        return sets
    if value is False:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(("final",), 'expected true or a list of fields like ["priority"]')
    for item in value:
        if item not in FIELDS:
            raise SpecError(("final",), f"{item!r} is not a field (use {', '.join(FIELDS)})")
        if check_sets and item not in sets:
            raise SpecError(("final",), f"{item!r} is not set by this rule")
    return frozenset(value)


def _apply_to(value: Any) -> str:
    if value not in APPLY_TO:
        raise SpecError(("apply_to",), f"{value!r} is not one of {', '.join(APPLY_TO)}")
    return str(value)


def _check_unique_names(rules: list[Rule], problems: list[Problem]) -> None:
    seen: dict[str, Rule] = {}
    for rule in rules:
        first = seen.setdefault(rule.name, rule)
        if first is not rule:
            where = f"{first.source}:{first.line}" if first.line else str(first.source)
            problems.append(
                Problem(
                    rule.source,
                    rule.line,
                    rule.name,
                    "name",
                    f"a rule of this name already exists at {where}",
                )
            )


# -- finding lines -----------------------------------------------------------------

_RULE_HEADER = re.compile(r"^\s*\[\[\s*rule\s*\]\]")


def _rule_blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, end) line indexes of each [[rule]] table, in order."""
    starts = [i for i, line in enumerate(lines) if _RULE_HEADER.match(line)]
    return [
        (s, (starts[n + 1] if n + 1 < len(starts) else len(lines))) for n, s in enumerate(starts)
    ]


def _find_field(lines: list[str], start: int, end: int, path: tuple[str, ...]) -> int | None:
    """The 1-based line of the most specific part of `path` found in the rule's block.

    Each part is looked for from the line of the part before it, so `when.header."X-A"
    .regex` finds the header's line, not the first `regex` of the rule.
    """
    found, pos = None, start
    for part in path:
        if part.isdigit():
            continue
        line = _find_line(lines, pos, end, part)
        if line is None:
            break
        found, pos = line, line - 1
    if found is not None:
        return found
    return start + 1 if start < len(lines) and _RULE_HEADER.match(lines[start]) else None


def _find_line(lines: list[str], start: int, end: int, key: str) -> int | None:
    pattern = re.compile(rf"""(^|[\s.{{,\[])["']?{re.escape(key)}["']?\s*[=.\]]""")
    for i in range(start, end):
        if pattern.search(lines[i].split("#", 1)[0]):
            return i + 1
    return None
