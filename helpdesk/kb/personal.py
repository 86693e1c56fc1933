"""Personal data in an article's text, flagged for the editor to remove. Pure.

Built in: e-mail addresses, phone numbers, and the names of the people on the ticket
(the customer's, the agents' as given); from config, [kb] personal_data_patterns (order
numbers and the like). A flag is only a finding: the editor removes the text, and an
article is published only when none remain (kb.articles.publish).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# international or national numbers with at least 7 digits, spaces/dots/dashes/brackets
# between groups; dates (2026-12-06) and plain years are not phone numbers
PHONE = re.compile(r"(?<![\w-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?"
                   r"\d{2,5}(?:[ .-]?\d{2,5}){1,4}(?![\w-])")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@lru_cache(maxsize=32)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in patterns)  # validated by config.kb on load


def _phones(text: str) -> Iterable[str]:
    for m in PHONE.finditer(text):
        found = m.group(0).strip()
        if sum(c.isdigit() for c in found) >= 7 and not _DATE.match(found):
            yield found


def find(text: str, *, names: Iterable[str] = (),
         patterns: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """Each personal datum in `text` once, as {"kind", "text"}, in order of kind."""
    found: list[dict[str, str]] = []

    def add(kind: str, value: str) -> None:
        if value and not any(f["text"] == value for f in found):
            found.append({"kind": kind, "text": value})

    for m in EMAIL.finditer(text):
        add("e-mail address", m.group(0))
    for value in _phones(EMAIL.sub(" ", text)):
        add("phone number", value)
    for name in names:
        # the whole name in any case; its parts only as written (capitalised), since
        # "Customer" or "Brown" in lower case is a word, not a name
        whole = name.strip()
        if len(whole) >= 3 and re.search(rf"(?<!\w){re.escape(whole)}(?!\w)", text, re.I):
            add("name", whole)
        for part in name.split():
            if len(part) >= 3 and re.search(rf"(?<!\w){re.escape(part)}(?!\w)", text):
                add("name", part)
    for pattern in _compiled(tuple(patterns)):
        for m in pattern.finditer(text):
            add("pattern", m.group(0))
    return found
