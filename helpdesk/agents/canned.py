"""Canned replies: Markdown files under config/replies/ ([paths] replies), one per reply,
named by the file (`replies/printer-reset.md` is `#reply printer-reset`), with jinja2
placeholders for the customer, the ticket and the agent:

    Hello {{ customer_name }},

    about {{ ticket_id }} ({{ subject }}): please switch the printer off and on again.

    {{ agent_name }}

The first line that is not blank is the reply's title where the desk lists them. The
files are the admins' (versioned with the rules in git), so they are rendered in
jinja2's sandbox with StrictUndefined, and `helpdesk rules check` validates them all:
a syntax error or an unknown placeholder names the file and line. Read on use, so an
edit needs no restart; a bad file is refused by name, never sent half-rendered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from helpdesk.config.settings import Settings
from helpdesk.errors import ConfigError

PLACEHOLDERS = ("customer_name", "customer_email", "ticket_id", "subject", "agent_name")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_BYTES = 64 * 1024

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                            keep_trailing_newline=False)


class CannedError(ConfigError):
    """A canned reply that cannot be used: the message names the file and line."""


@dataclass(frozen=True)
class Canned:
    name: str
    title: str
    path: Path


def directory(settings: Settings) -> Path:
    return settings.beside_config(settings.paths.replies, "replies")


def available(settings: Settings) -> list[Canned]:
    """Every reply file by name (valid or not: `load` and `check_all` say what is wrong)."""
    folder = directory(settings)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.md")):
        name = path.stem.lower()
        if not _NAME.match(name):
            continue
        try:
            head = path.read_text(encoding="utf-8", errors="replace")[:2000]
        except OSError:
            continue
        title = next((line.strip().lstrip("#").strip() for line in head.splitlines()
                      if line.strip()), name)
        found.append(Canned(name, title[:120], path))
    return found


def find(settings: Settings, name: str) -> Canned | None:
    wanted = name.strip().lower()
    return next((c for c in available(settings) if c.name == wanted), None)


def _source(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CannedError(f"{path}: cannot read ({err.strerror})") from None
    if len(data) > MAX_BYTES:
        raise CannedError(f"{path}: larger than {MAX_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise CannedError(f"{path}, line {line}: not UTF-8") from None


def _template(path: Path) -> jinja2.Template:
    """The file compiled, or CannedError naming the file and line of what is wrong."""
    source = _source(path)
    try:
        tree = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as err:
        raise CannedError(f"{path}, line {err.lineno}: {err.message}") from None
    unknown = sorted(meta.find_undeclared_variables(tree) - set(PLACEHOLDERS))
    if unknown:
        name = unknown[0]
        raise CannedError(f"{path}, line {_line_of(source, name)}: unknown placeholder "
                          f"{{{{ {name} }}}} (known: {', '.join(PLACEHOLDERS)})")
    return _ENV.from_string(source)


def _line_of(source: str, name: str) -> int:
    """The line where `name` is first used as a variable (the lexer knows the lines)."""
    for lineno, kind, value in _ENV.lex(source):
        if kind == "name" and value == name:
            return lineno
    return 1


def check(canned: Canned) -> None:
    """CannedError naming the file and line when the reply cannot be used."""
    _template(canned.path)


def render(canned: Canned, values: dict[str, str]) -> str:
    """The reply's text for one ticket; CannedError when the file is bad."""
    template = _template(canned.path)
    try:
        return template.render(**{k: values.get(k, "") for k in PLACEHOLDERS}).strip()
    except jinja2.TemplateError as err:  # the sandbox refused something, at render time
        raise CannedError(f"{canned.path}: {err}") from None


def check_all(settings: Settings) -> tuple[int, list[str]]:
    """(how many replies are valid, a message per bad one) for `helpdesk rules check`."""
    problems, good = [], 0
    folder = directory(settings)
    if not folder.is_dir():
        return 0, []
    for path in sorted(folder.iterdir()):
        if path.suffix != ".md":
            continue
        if not _NAME.match(path.stem.lower()):
            problems.append(f"{path}: a reply's name is lower-case letters, digits, - and _")
            continue
        try:
            _template(path)
            good += 1
        except CannedError as err:
            problems.append(str(err))
    return good, problems
