"""Every corpus mail parses (or is refused with ParseError), and upstream expectations hold.

Out of scope here: reply_text, reply_contains, reply_not_contains, reply_nonempty
and fragments describe reply stripping, which is another stage's job.
Metadata fields (file, expectation_source, semantics) are not expectations.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpdesk.errors import ParseError
from helpdesk.mail.mimetext import normalise_text, sanitise_html
from helpdesk.mail.parse import ParsedMail, parse
from tests.corpus import corpus_id, expectations, iter_corpus_files

FILES = list(iter_corpus_files())
WITH_EXPECTATIONS = [p for p in FILES if expectations(p)]

# Not mail at all: quarantined with a reason rather than turned into tickets.
NOT_MAIL = {"rt/emails/lorem-ipsum.eml", "spamscope-mail-parser/mail_outlook_1.msg"}

OUT_OF_SCOPE = {"reply_text", "reply_contains", "reply_not_contains", "reply_nonempty", "fragments"}
METADATA = {"file", "expectation_source", "semantics", "from_addresses", "to_addresses"}

# (file, field) -> why we differ from the upstream project on purpose.
# Each entry is asserted to still differ, so a fix or a regression shows up.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {
    ("django-helpdesk/utf-nondecodable.eml", "body_contains"): (
        "django-helpdesk describes the ticket with the HTML alternative; this mail's "
        "text/plain alternative has different content, and we prefer text/plain "
        "(the HTML text is kept in body_html)"
    ),
    ("php-mime-mail-parser/m0008.eml", "embedded_data_uri_count"): (
        "the second inline image is referenced from <table background=cid:...>, an "
        "attribute our nh3 sanitiser removes; php-mime-mail-parser does not sanitise"
    ),
    ("php-mime-mail-parser/m0025.eml", "embedded_data_uri_count"): (
        "same as m0008: <table background=cid:...> is removed by the sanitiser"
    ),
    ("php-mime-mail-parser/m0020.eml", "html_body_substring_counts"): (
        "body_html is sanitised by nh3, which drops the <html> document wrapper"
    ),
    ("php-mime-mail-parser/m0020.eml", "attachments"): (
        "the calendar part has no name: php-mime-mail-parser invents 'noname1', "
        "we invent 'part-1.ics' (size, type and disposition agree)"
    ),
}


def _is_not_mail(path: Path) -> bool:
    return path.name.endswith((".body.txt", ".msg")) or corpus_id(path) in NOT_MAIL


@pytest.mark.parametrize("path", FILES, ids=corpus_id)
def test_corpus_file_parses_or_raises_parse_error(path: Path) -> None:
    raw = path.read_bytes()
    if _is_not_mail(path):
        with pytest.raises(ParseError) as info:
            parse(raw)
        assert str(info.value)
        return
    mail = parse(raw)
    assert isinstance(mail, ParsedMail)
    assert all(isinstance(v, str) for _, v in mail.headers)
    assert "\x00" not in mail.body_text


def _check_from(mail: ParsedMail, expected: dict[str, object]) -> bool:
    people = expected.get("from_addresses") or []
    if people:
        first = people[0]  # type: ignore[index]
        # php-mime-mail-parser repeats the address as display name when there is none
        display = "" if first["display"] == first["address"] else first["display"]
        if (mail.from_name, mail.from_addr) != (display, first["address"].lower()):
            return False
    return mail.header("from") == expected["from"]


def _check_to(mail: ParsedMail, expected: dict[str, object]) -> bool:
    people = expected.get("to_addresses") or []
    addresses = tuple(p["address"].lower() for p in people)  # type: ignore[union-attr]
    return mail.to == addresses and mail.header("to") == expected["to"]


def _attachment_matches(mail: ParsedMail, wanted: list[dict[str, object]]) -> bool:
    if len(mail.attachments) != len(wanted):
        return False
    for got, want in zip(mail.attachments, wanted, strict=True):
        disposition = "inline" if got.inline else "attachment"
        if (got.filename, got.size, got.content_type, disposition) != (
            want["filename"],
            want["size"],
            want["content_type"],
            want["disposition"],
        ):
            return False
        count = want.get("content_substring_count")
        if (
            count
            and got.data.decode("utf-8", "replace").count(count["substring"]) != count["count"]
        ):  # type: ignore[index]
            return False
    return True


def _embedded(mail: ParsedMail) -> int:
    return sum(
        1
        for a in mail.attachments
        if a.inline and a.content_id and f"cid:{a.content_id}" in mail.body_html
    )


def _forwarded_text(mail: ParsedMail) -> str:
    # inline-forwarded text stays in the body; attached originals are message/rfc822
    inner = [parse(a.data) for a in mail.attachments if a.content_type == "message/rfc822"]
    return "\n".join([mail.body_text, *(m.body_text for m in inner)])


def _ticket_title(subject: str, expected: str) -> bool:
    # django-helpdesk truncates the title to its field length and appends "..."
    return (
        expected == subject
        if not expected.endswith("...")
        else (expected == subject[: len(expected) - 3] + "...")
    )


CHECKS: dict[str, Callable[[ParsedMail, object, dict[str, object]], bool]] = {
    "subject": lambda m, v, e: m.subject == v,
    "subject_startswith": lambda m, v, e: m.subject.startswith(str(v)),
    "django_helpdesk_ticket_title": lambda m, v, e: _ticket_title(m.subject, str(v)),
    "from": lambda m, v, e: _check_from(m, e),
    "to": lambda m, v, e: _check_to(m, e),
    "body_contains": lambda m, v, e: all(s in m.body_text for s in v),  # type: ignore[attr-defined]
    "body_text_equals": lambda m, v, e: m.body_text == v,
    "body_text_stripped_equals": lambda m, v, e: m.body_text.strip() == str(v).strip(),
    "text_body_exact": lambda m, v, e: m.body_text == normalise_text(str(v)),
    "text_body_substring_counts": lambda m, v, e: all(
        m.body_text.count(c["substring"]) == c["count"]
        for c in v  # type: ignore[attr-defined]
    ),
    "html_body_exact": lambda m, v, e: m.body_html == (sanitise_html(str(v)) if v else ""),
    "html_body_contains": lambda m, v, e: all(s in m.body_html for s in v),  # type: ignore[attr-defined]
    "html_body_substring_counts": lambda m, v, e: all(
        m.body_html.count(c["substring"]) == c["count"]
        for c in v  # type: ignore[attr-defined]
    ),
    "attachments": lambda m, v, e: _attachment_matches(m, v),  # type: ignore[arg-type]
    "embedded_data_uri_count": lambda m, v, e: _embedded(m) == v,
    "forwarded_part_contains": lambda m, v, e: all(s in _forwarded_text(m) for s in v),  # type: ignore[attr-defined]
}


def _cases() -> list[tuple[Path, str]]:
    cases = []
    for path in WITH_EXPECTATIONS:
        for key in expectations(path) or {}:
            if key not in OUT_OF_SCOPE | METADATA | {"max_parse_seconds"}:
                cases.append((path, key))
    return cases


def test_every_expectation_field_is_checked_or_declared_out_of_scope() -> None:
    for path in WITH_EXPECTATIONS:
        unknown = set(expectations(path) or {}) - OUT_OF_SCOPE - METADATA - set(CHECKS)
        assert unknown <= {"max_parse_seconds"}, (corpus_id(path), unknown)


@pytest.mark.parametrize(
    ("path", "key"), _cases(), ids=lambda x: x if isinstance(x, str) else corpus_id(x)
)
def test_upstream_expectation_holds(path: Path, key: str) -> None:
    expected = expectations(path) or {}
    mail = parse(path.read_bytes())
    holds = CHECKS[key](mail, expected[key], expected)
    reason = KNOWN_DIFFERENCES.get((corpus_id(path), key))
    if reason:
        assert not holds, f"known difference no longer differs, remove it: {reason}"
    else:
        assert holds, f"{key}: expected {expected[key]!r}"


@pytest.mark.parametrize(
    "path",
    [p for p in WITH_EXPECTATIONS if "max_parse_seconds" in (expectations(p) or {})],
    ids=corpus_id,
)
def test_pathological_input_is_fast(path: Path) -> None:
    limit = float((expectations(path) or {})["max_parse_seconds"])  # type: ignore[arg-type]
    start = time.perf_counter()
    with contextlib.suppress(ParseError):
        parse(path.read_bytes())
    assert time.perf_counter() - start < limit
