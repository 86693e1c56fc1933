"""A big mail is parsed without being copied many times over (issue #18: a 25 MiB mail
must not multiply in memory), and the leaner paths give exactly what the old ones gave:
the content hash is a stored dedupe key, so its value must never change."""

from __future__ import annotations

import email
import email.policy
import hashlib
import random
import tracemalloc
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpdesk.mail import feed as feed_module
from helpdesk.mail import mimeparts
from helpdesk.mail.parse import (
    _FIELD,
    _HASHED_HEADERS,
    _TRANSPORT_HEADERS,
    _field_name,
    content_hash,
    parse,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _reference_hash(raw: bytes) -> str:
    """content_hash as it was written first (whole-mail lists): the values it gave are
    in every database, so the streaming version must give the same."""
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    fields: list[bytes] = []
    body_at: int | None = len(lines)
    for i, line in enumerate(lines):
        if not line.strip(b"\r"):
            body_at = i + 1
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b" " + line.strip()
        elif _FIELD.match(line):
            fields.append(line.strip())
        else:
            body_at = None
            break
    named = [(_field_name(f), f) for f in fields]
    if body_at is None or not any(name in _HASHED_HEADERS for name, _ in named):
        start = 0
        while start < len(lines) and (
            _FIELD.match(lines[start]) and _field_name(lines[start]).startswith(_TRANSPORT_HEADERS)
        ):
            start += 1
            while start < len(lines) and lines[start][:1] in (b" ", b"\t"):
                start += 1
        digest = hashlib.sha256(b"whole mail\n")
        for line in b"\n".join(lines[start:]).rstrip().split(b"\n"):
            digest.update(line.rstrip() + b"\n")
        return digest.hexdigest()
    if any(name == "message-id" for name, _ in named):
        wanted = [f for name, f in named if name in _HASHED_HEADERS]
    else:
        wanted = [f for name, f in named if not name.startswith(_TRANSPORT_HEADERS)]
    digest = hashlib.sha256()
    for item in sorted(wanted):
        digest.update(b" ".join(item.split()) + b"\n")
    digest.update(b"\n")
    body = b"\n".join(lines[body_at:])
    for line in body.rstrip().split(b"\n"):
        digest.update(line.rstrip() + b"\n")
    return digest.hexdigest()


# mail-shaped bytes: header lines (trace fields among them), folds, blank lines and
# whitespace-only lines, bare CRs and CRLFs, text without a final line end
_pieces = st.sampled_from([
    b"Received: from mx\n", b"\tby relay\r\n", b"Message-ID: <a@b>\n", b"From: x@y\r\n",
    b"Subject: hi \n", b"X-Odd: 1\n", b"\n", b"\r\n", b"\r", b"\r\r\n", b" \t\n", b"\x0c\n",
    b"text", b"more text  \n", b"- alert\n", b"==\n", b" ",
])
mailish = st.lists(_pieces, max_size=30).map(b"".join)


@SETTINGS
@given(mailish)
@example(b"")
@example(b"\n\n")
@example(b"Received: x\n\tfolded\r\n")
@example(b"Message-ID: <a@b>\n\ntext\n \n\r\n")
def test_content_hash_gives_the_values_it_always_gave(raw: bytes) -> None:
    assert content_hash(raw) == _reference_hash(raw)


@SETTINGS
@given(st.binary(max_size=500))
def test_content_hash_of_any_bytes_is_unchanged(raw: bytes) -> None:
    assert content_hash(raw) == _reference_hash(raw)


@SETTINGS
@given(mailish, st.binary(max_size=200))
def test_feeding_the_parser_in_slices_builds_the_same_tree(head: bytes, tail: bytes) -> None:
    data = head + tail
    whole = email.message_from_bytes(data, policy=email.policy.compat32)
    original = feed_module.FEED_CHUNK
    feed_module.FEED_CHUNK = 3  # slices that cut lines, CRLFs and surrogates anywhere
    try:
        sliced = feed_module.feed(data)
    finally:
        feed_module.FEED_CHUNK = original
    assert sliced.as_string() == whole.as_string()
    assert [type(d) for d in sliced.defects] == [type(d) for d in whole.defects]


def _tree(msg: email.message.Message) -> object:
    """Everything the parser put into a Message tree, as plain values."""
    payload = msg._payload
    return (msg._headers, msg.get_unixfrom(), msg.get_default_type(), msg.preamble,
            msg.epilogue, [type(d).__name__ for d in msg.defects],
            [_tree(p) for p in payload] if isinstance(payload, list) else payload)


# trees with runs of base64 lines in every place the parser can meet them: heads,
# bodies, preambles, epilogues, delivery-status blocks, nested messages, lost boundaries
_tree_pieces = st.sampled_from([
    b"Content-Type: multipart/mixed; boundary=b\n", b"Content-Type: multipart/mixed\n",
    b"Content-Type: message/rfc822\n", b"Content-Type: message/delivery-status\n",
    b"Content-Type: text/plain\n", b"Content-Transfer-Encoding: base64\n",
    b"Subject: x\r\n", b" folded\n", b"From nobody\n", b"\n", b"\r\n", b"\r", b"--b\n",
    b"--b--\n", b"--b\r\n", b"--b", b"text line\n", b"QUJD\n" * 40, b"QUJD\r\n" * 33,
    b"QUJD\n" * 31, b"QQ==\n" * 35 + b"QQ", b"QUJD\r\n" * 32 + b"\r\n", b"QUJD" * 30 + b"\n",
    b"QUJD\rQUJD\n" * 40, b"hdrun0123456789abcdefx0\n", b"=\n" * 40, b"\xff\xfe\n",
])


@SETTINGS
@given(st.lists(_tree_pieces, max_size=40).map(b"".join))
@example(b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\n" + b"QUJD\n" * 40 + b"--b--\n")
@example(b"Subject: x\n" + b"QUJD\n" * 40 + b"\n")
def test_base64_runs_fed_as_placeholders_give_the_same_tree(data: bytes) -> None:
    whole = email.message_from_bytes(data, policy=email.policy.compat32)
    assert _tree(feed_module.feed(data)) == _tree(whole)


base64_bodies = st.text(alphabet="ABCDEFGHabcdefgh0123456789+/=\r\n!", max_size=200)


@SETTINGS
@given(base64_bodies)
@example("QUJD\r\nREVG\r\n")
@example("QUI=\r\n")
@example("QQ==\r\n\r\n")
@example("QUJD\r\nRA\r\n")  # padding missing: the stdlib repairs it and says so
def test_a_clean_base64_body_decodes_as_the_stdlib_decodes_it(body: str) -> None:
    raw = (b"Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n"
           + body.encode())
    part = email.message_from_bytes(raw, policy=email.policy.compat32)
    ours = mimeparts._clean_base64(part)
    theirs = part.get_payload(decode=True)
    if ours is not None:
        assert ours == theirs
        assert not part.defects  # the stdlib had nothing to repair either
    defects: list[str] = []
    fresh = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert mimeparts.payload_bytes(fresh, defects) == (ours if ours is not None else
                                                        mimeparts.payload_bytes(part, []))


@SETTINGS
@given(st.text(alphabet="ABab09+/=\r\n!é-", max_size=60))
@example("QUJD\r\n=\r\n=")
@example("QQ==\n=")
def test_the_clean_base64_check_is_the_regex(body: str) -> None:
    letters = len(body) - body.count("\r") - body.count("\n")
    expected = letters % 4 == 0 and bool(mimeparts._CLEAN_BASE64.fullmatch(body))
    assert mimeparts._is_clean_base64(body) == expected


def _big_mail(size: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Big <big@customer.test>"
    msg["To"] = "support@example.test"
    msg["Subject"] = "the scans"
    msg["Message-ID"] = "<big@customer.test>"
    msg.set_content("Hello,\n\nthe archive is attached.\n")
    msg.add_attachment(random.Random(18).randbytes(size * 57 // 78), maintype="application",
                       subtype="pdf", filename="archive.pdf")
    return msg.as_bytes(policy=email.policy.SMTP)


@pytest.mark.parametrize("size", [4 * 1024 * 1024])
def test_parsing_a_big_mail_holds_it_a_few_times_at_most(size: int) -> None:
    """Python's allocations while parsing (tracemalloc: exact, not timed) beyond the mail
    itself. The stdlib's own path (message_from_bytes, decode=True, hashing via split
    lists) peaked at about eight times the mail; the feed parser's list of body lines
    and their join are what is left."""
    raw = _big_mail(size)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        mail = parse(raw)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert mail.attachments[0].size > size * 0.7
    assert peak < 3.5 * len(raw), f"parsing took {peak / len(raw):.1f} x the mail"
