"""Quote stripping against the corpus' reply expectations (talon, email-reply-parser).

These are the `reply_*` fields that test_parse_corpus.py leaves out of scope. Where we
differ on purpose or cannot match, the file is listed with the reason, and the test
checks that it still differs, so the list cannot silently go stale.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpdesk.mail.parse import parse
from helpdesk.mail.replytext import latest_reply
from tests.corpus import corpus_root

KNOWN_DIFFERENCES = {
    "talon/standard_replies/iphone.eml":
        "talon keeps 'Sent from my iPhone'; we drop client signatures from replies sent "
        "to customers on purpose (the template signs with the agent's name)",
    "talon/standard_replies/sparrow.eml":
        "talon keeps the '-- ' signature block; we cut at the signature delimiter on purpose",
    "talon/standard_replies/android.eml":
        "the Russian attribution ('... пользователь ... написал:') wraps over two lines; "
        "neither mail-parser-reply nor our fallback knows Russian",
}


def _cases() -> list[Path]:
    root = corpus_root()
    found = [p for p in sorted(root.glob("**/*.expected.json"))
             if {"reply_text", "reply_contains", "reply_not_contains", "reply_nonempty"}
             & set(json.loads(p.read_text()))]
    return found


def _reply_of(expected_path: Path) -> tuple[str, str]:
    exp = json.loads(expected_path.read_text())
    source = expected_path.with_name(exp["file"])
    raw = source.read_bytes()
    text = parse(raw).body_text if source.suffix == ".eml" else raw.decode("utf-8", "replace")
    return str(source.relative_to(corpus_root())), latest_reply(text)


def _problems(exp: dict, got: str) -> list[str]:  # type: ignore[type-arg]
    problems = []
    if "reply_text" in exp and got.strip() != exp["reply_text"].strip():
        problems.append(f"reply_text: expected {exp['reply_text']!r}, got {got!r}")
    problems += [f"missing {s!r}" for s in exp.get("reply_contains", []) if s not in got]
    problems += [f"should not contain {s!r}" for s in exp.get("reply_not_contains", [])
                 if s in got]
    if exp.get("reply_nonempty") and not got.strip():
        problems.append("empty reply")
    return problems


@pytest.mark.parametrize("expected_path", _cases(), ids=lambda p: p.name)
def test_the_reply_text_matches_the_upstream_expectation(expected_path: Path) -> None:
    name, got = _reply_of(expected_path)
    problems = _problems(json.loads(expected_path.read_text()), got)
    if name in KNOWN_DIFFERENCES:
        assert problems, f"{name} now matches: remove it from KNOWN_DIFFERENCES"
    else:
        assert not problems, f"{name}: {problems}"


def test_the_corpus_has_reply_expectations() -> None:
    assert len(_cases()) >= 20
