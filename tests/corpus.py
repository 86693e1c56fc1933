"""Where the real-world mail corpus lives, for any test that wants to run over it.

Deliberately not a conftest fixture: import it (`from tests.corpus import ...`)
from any test module. HELPDESK_CORPUS points at a full checkout of the corpus;
the default is the representative subset kept in tests/corpus/.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

_MESSAGE_SUFFIXES = (".eml", ".msg", ".body.txt")


def corpus_root() -> Path:
    configured = os.environ.get("HELPDESK_CORPUS")
    return Path(configured) if configured else Path(__file__).parent / "corpus"


def iter_corpus_files() -> Iterator[Path]:
    """Every message file (.eml, .msg, header-less .body.txt), in a stable order."""
    root = corpus_root()
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name.endswith(_MESSAGE_SUFFIXES):
            yield path


def corpus_id(path: Path) -> str:
    """The path relative to the corpus root, for test ids and lookup tables."""
    return path.relative_to(corpus_root()).as_posix()


def expectations(path: Path) -> dict[str, object] | None:
    """The upstream project's stated expectations for this message, if it has any."""
    name = path.name
    for suffix in _MESSAGE_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    candidate = path.with_name(name + ".expected.json")
    if not candidate.exists():
        return None
    loaded: dict[str, object] = json.loads(candidate.read_text(encoding="utf-8"))
    return loaded
