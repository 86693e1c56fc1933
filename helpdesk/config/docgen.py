"""Write the configuration reference from the settings model, so it cannot drift.

    python -m helpdesk.config.docgen > docs/configuration.md

tests/test_docgen.py fails when the committed file differs from this output: change
a key in config/settings.py, then run the command above.
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from helpdesk.config.schedule import duration_text
from helpdesk.config.settings import Settings

HEADER = """\
# Configuration reference

Generated from the settings model (`helpdesk/config/settings.py`) by
`python -m helpdesk.config.docgen > docs/configuration.md`; do not edit by hand.

The file is TOML: `--config PATH`, else `$HELPDESK_CONFIG`, else `config/helpdesk.toml`.
An unknown or invalid key stops start-up with one line naming the file, the key and the
problem. Secrets may come from the environment instead: `HELPDESK_SECRET`,
`HELPDESK_DATABASE_URL`, `HELPDESK_RELAY_PASSWORD`, and per mailbox `password_env`.
`config/helpdesk.toml` is a commented example with every default.
A duration is a string like `"90s"`, `"30m"`, `"8h"`, `"3d"` or `"1d12h"`; a bare number
means seconds.
"""


def type_name(annotation: Any) -> str:
    """A reader's name for a type: `int`, `list of str`, `"ssl" | "none"`, ..."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:  # a type with validators, e.g. config_sched.Duration
        return type_name(args[0])
    if annotation is timedelta:
        return "duration"
    if origin is Literal:
        return " \\| ".join(f'`"{a}"`' for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " \\| ".join(names) + (" (optional)" if type(None) in args else "")
    if origin in (list, tuple):
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return "table"
    if inspect.isclass(annotation) and issubclass(annotation, Path):
        return "path"
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return "table"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def toml_value(value: Any) -> str:
    if isinstance(value, timedelta):
        return f'"{duration_text(value)}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "(unset)"
    return str(value)


def default_of(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    value = field.get_default(call_default_factory=True)
    return "(unset)" if value is None else f"`{toml_value(value)}`"


def limits(field: FieldInfo) -> str:
    """Constraints from Field(ge=..., pattern=...) as text."""
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "length >=",
             "max_length": "length <=", "pattern": "matches"}
    found = []
    for meta in field.metadata:
        for attr, word in words.items():
            value = getattr(meta, attr, None)
            if value is not None:
                found.append(f"{word} `{value}`")
    return "; ".join(found)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def section(title: str, model: type[BaseModel], intro: str = "") -> list[str]:
    out = [f"## `{title}`", ""]
    doc = inspect.getdoc(model)
    if doc and model.__doc__:  # the model's own docstring, not an inherited one
        out += [" ".join(doc.split()), ""]
    if intro:
        out += [intro, ""]
    out += ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        key = field.alias or name
        meaning = _cell(field.description or "")
        rule = limits(field)
        if rule:
            meaning = f"{meaning} ({rule})" if meaning else f"({rule})"
        out.append(f"| `{key}` | {type_name(field.annotation)} | {default_of(field)} | "
                   f"{meaning} |")
    return [*out, ""]


def free_form(title: str, field: FieldInfo) -> list[str]:
    text = field.description or "Free-form table, read by the scheduler (escalation, SLA, " \
        "surveys); its keys are validated there."
    return [f"## `[{title}]`", "", f"Type: {type_name(field.annotation)}. {_cell(text)}", ""]


def reference() -> str:
    out = [HEADER]
    for name, field in Settings.model_fields.items():
        if field.exclude:
            continue
        ann = field.annotation
        args = typing.get_args(ann)
        origin = typing.get_origin(ann)
        if inspect.isclass(ann) and issubclass(ann, BaseModel):
            out += section(f"[{name}]", ann)
        elif origin is dict and len(args) == 2 and inspect.isclass(args[1]) \
                and issubclass(args[1], BaseModel):
            out += section(f"[{name}.NAME]", args[1], f"One table per {name}, named by NAME.")
        elif origin is list and args and inspect.isclass(args[0]) \
                and issubclass(args[0], BaseModel):
            out += section(f"[[{name}]]", args[0], "Repeat the table for each one.")
        else:
            out += free_form(name, field)
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    sys.stdout.write(reference())


if __name__ == "__main__":
    main()
