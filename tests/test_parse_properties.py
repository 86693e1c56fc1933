"""Hypothesis properties of parse.py: total, line-end blind, str-only headers, reusable
header text, stable hashes."""

from __future__ import annotations

from dataclasses import replace
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from helpdesk.errors import ParseError
from helpdesk.mail.parse import (
    ParsedMail,
    clean_header_text,
    content_hash,
    decode_header_value,
    parse,
)
from helpdesk.outgoing import compose as mailout

CHARSETS = [
    "utf-8",
    "iso-8859-1",
    "x-mac-cyrillic",
    "ks_c_5601-1987",
    "iso-8859-8-i",
    "gb2312",
    "utf-16",
    "x-unknown",
    "bogus-42",
    "",
]
NAMES = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "X-Odd",
]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

encoded_words = st.builds(
    lambda cs, enc, body: f"=?{cs}?{enc}?{body}?=",
    st.sampled_from(CHARSETS),
    st.sampled_from(["B", "Q", "b", "x"]),
    st.text(alphabet="ABCDEFabcdef0123456789=+/_?", max_size=30),
)
header_values = st.lists(
    st.one_of(
        st.text(max_size=40),
        encoded_words,
        st.sampled_from(
            [
                "multipart/mixed; boundary=b",
                "text/html; charset=utf-16",
                "base64",
                "quoted-printable",
                "<a@b>",
                "undisclosed:;",
                '"Doe, J" <j@x.org>',
            ]
        ),
    ),
    max_size=4,
).map(" ".join)
headers = st.lists(st.tuples(st.sampled_from(NAMES), header_values), max_size=8)
bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    st.just(b"--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: multipart/mixed\n\n--b--\n"),
)


def _mail(items: list[tuple[str, str]], body: bytes) -> bytes:
    head = "".join(f"{k}: {v}\n" for k, v in items).encode("utf-8", "surrogatepass")
    return head + b"\n" + body


def _parse_or_reason(raw: bytes) -> ParsedMail | str:
    try:
        return parse(raw)
    except ParseError as err:
        assert str(err)
        return str(err)


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_nothing_but_parse_error(raw: bytes) -> None:
    result = _parse_or_reason(raw)
    if isinstance(result, ParsedMail):
        assert result.size == len(raw) and result.content_hash == content_hash(raw)
        assert all(isinstance(v, str) for _, v in result.headers)


@SETTINGS
@given(headers, bodies)
def test_mail_shaped_bytes_raise_nothing_but_parse_error(
    items: list[tuple[str, str]], body: bytes
) -> None:
    result = _parse_or_reason(_mail(items, body))
    if isinstance(result, ParsedMail):
        assert all(isinstance(v, str) for _, v in result.headers)
        assert isinstance(result.subject, str) and isinstance(result.body_text, str)




@SETTINGS
@given(
    st.one_of(
        st.text(), encoded_words, st.binary().map(lambda b: b.decode("ascii", "surrogateescape"))
    )
)
def test_header_decoding_always_returns_clean_str(value: str) -> None:
    decoded = decode_header_value(value)
    assert isinstance(decoded, str)
    assert "\x00" not in decoded
    assert not any("\udc80" <= ch <= "\udcff" for ch in decoded)


def _subject_sent_and_read_back(subject: str) -> str:
    """`subject` in a mail as mailout sends it, and what parse() reads from that mail."""
    msg = EmailMessage(policy=mailout.POLICY)
    msg["From"] = "support@example.test"
    msg["Subject"] = subject
    msg.set_content("hi")
    return parse(mailout.wire_bytes(msg)).subject


@SETTINGS
@given(st.one_of(st.text(), encoded_words))
def test_cleaned_header_text_can_be_reused_in_an_outgoing_header(value: str) -> None:
    cleaned = clean_header_text(decode_header_value(value))
    assert clean_header_text(cleaned) == cleaned  # cleaning is done once and for all
    assert _subject_sent_and_read_back(cleaned) == cleaned


@pytest.mark.parametrize("subject", [
    # the space before the last word was lost where the stdlib folds encoded words
    "00000000 \x80\x80\x80\x80\x80\x80\x80\x80\x80\U00010000\U00010000\U00010000"
    "\U00010000 \x80",
    "Re: [HD-7] Grüße aus Köln, " + "die Heizung ist kaputt " * 4 + "und kalt",
])
def test_a_long_non_ascii_subject_keeps_its_spaces_when_sent(subject: str) -> None:
    assert _subject_sent_and_read_back(subject) == subject


def test_a_subject_folded_after_an_encoded_word_keeps_the_space_before_the_next_word() -> None:
    assert decode_header_value("=?utf-8?b?w6Q=?=\r\n 0") == "\xe4 0"


@pytest.mark.parametrize(("value", "cleaned"), [("?=?", "? = ?"), ("=?=", "= ? ="),
                                                ("a =?x?q?=?= b", "a = ?x?q? = ? = b")])
def test_cleaning_breaks_every_leftover_encoded_word_marker_in_one_pass(
    value: str, cleaned: str
) -> None:
    assert clean_header_text(value) == cleaned
    assert clean_header_text(cleaned) == cleaned


lf_headers = st.lists(
    st.tuples(
        st.sampled_from(NAMES),
        st.text(alphabet=st.characters(codec="ascii", exclude_characters="\r\n"), max_size=30),
    ),
    max_size=6,
)
lf_bodies = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r"), max_size=200)


@SETTINGS
@given(lf_headers, lf_bodies)
# found by this test: a part that is no text kept the transport's line ends as its bytes
@example(items=[("Content-Type", "/")], body="\n")
@example(items=[("Content-Type", "application/octet-stream")], body="a\nb\n")
def test_a_mail_parses_the_same_with_lf_or_crlf_line_ends(
    items: list[tuple[str, str]], body: str
) -> None:
    raw = _mail(items, body.encode())
    lf, crlf = _parse_or_reason(raw), _parse_or_reason(raw.replace(b"\n", b"\r\n"))
    if isinstance(lf, str) or isinstance(crlf, str):
        assert lf == crlf
        return
    # the size counts the CRs; everything else, the defects too, is the same
    assert replace(crlf, size=lf.size) == lf
    assert crlf.size == len(raw) + raw.count(b"\n")


@SETTINGS
@given(lf_headers, lf_bodies)
def test_content_hash_is_stable_and_ignores_line_endings(
    items: list[tuple[str, str]], body: str
) -> None:
    raw = _mail(items, body.encode())
    assert content_hash(raw) == content_hash(bytes(raw))
    assert content_hash(raw) == content_hash(raw.replace(b"\n", b"\r\n"))


@SETTINGS
@given(
    lf_headers,
    lf_bodies,
    st.text(alphabet=st.characters(codec="ascii", exclude_characters="\r\n"), max_size=40),
)
def test_content_hash_ignores_trace_headers(
    items: list[tuple[str, str]], body: str, hop: str
) -> None:
    raw = _mail(items, body.encode())
    traced = f"Received: from {hop}\n\tby mx.example; Mon, 1 Jan 2024 00:00:00 +0000\n"
    traced += f"Return-Path: <{hop}@example.org>\nDelivered-To: x@example.org\n"
    assert content_hash(traced.encode() + raw) == content_hash(raw)


def _normalised(data: bytes) -> bytes:
    """What the hash is meant to see: line ends and trailing whitespace do not count."""
    lines = data.replace(b"\r\n", b"\n").rstrip().split(b"\n")
    return b"\n".join(line.rstrip() for line in lines)


@SETTINGS
@given(lf_headers, lf_bodies, lf_bodies)
def test_mails_whose_bodies_differ_have_different_content_hashes(
    items: list[tuple[str, str]], body: str, other: str
) -> None:
    assume(_normalised(body.encode()) != _normalised(other.encode()))
    assert content_hash(_mail(items, body.encode())) != content_hash(_mail(items, other.encode()))


# data that does not start with a header field: "- alert " cannot begin a field name
headerless = st.binary(max_size=300).map(lambda b: b"- alert " + b)


@SETTINGS
@given(headerless, headerless)
def test_different_data_without_a_head_has_different_content_hashes(
    raw: bytes, other: bytes
) -> None:
    assume(_normalised(raw) != _normalised(other))
    assert content_hash(raw) != content_hash(other)


@SETTINGS
@given(st.binary(max_size=2000))
def test_content_hash_never_raises(raw: bytes) -> None:
    assert len(content_hash(raw)) == 64
