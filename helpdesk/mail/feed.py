"""Bytes -> the stdlib's Message tree (compat32), as `email.message_from_bytes` builds it,
with less of the feed parser's line-by-line Python work. Pure.

The feed parser reads a mail one line at a time (~2 µs a line): a 200 KB PDF in base64
is 2,700 lines, most of a mail's parse time. Two shortcuts give the very same tree:

* a mail that is no tree (no multipart, no message/* part) is read up to the first
  blank line only, the rest of the bytes being its body (`_single_part`);
* in a tree, each long run of base64 lines is fed as one placeholder line and put back
  into the parsed payloads afterwards (`_collapse`, `_restore`).

Why the second gives the same tree: a base64 line (letters, digits, "+", "/", "=") has
no colon, starts with neither whitespace nor "From ", is not blank and, starting with
no "-", is no boundary. Wherever the parser meets such lines (a head, a body, a
preamble, a delivery-status block) the first ends a head and all of them join the
text they are in, unchanged; the placeholder is such a line too, so it lands where the
run would have. The parser strips the line end before a boundary: the placeholder
takes the run without its last line end, which stays in the bytes. Where the parser
throws lines away (after a close boundary that came before any part, for one) a run
goes with its placeholder: each placeholder must be found exactly once, or the mail is
parsed again the plain way.
"""

from __future__ import annotations

import email.feedparser
import email.policy
import re
import secrets
from email.message import Message

# compat32: no header objects (5x faster on many-part mail) and it accepts the
# unquoted `boundary=----=_NextPart...` that the default policy truncates.
POLICY = email.policy.compat32
FEED_CHUNK = 64 * 1024
# base64 lines after a line end, each ended by LF or CRLF (a lone CR is a line end to
# the parser, and left alone here); fewer lines are not worth a placeholder. Possessive
# ("}+"): nothing follows to backtrack for, and the greedy form kept a backtracking
# entry per line (some three times a big attachment's size at once).
_BASE64_RUN = re.compile(rb"\n((?:[A-Za-z0-9+/=]+\r?\n){32,}+)")
_PLACEHOLDER = re.compile(r"hdrun[0-9a-f]{16}x[0-9]+")


def feed(data: bytes) -> Message:
    """What `email.message_from_bytes(data, policy=compat32)` gives."""
    single = _single_part(data)
    if single is not None:
        return single
    collapsed, runs = _collapse(data)
    if not runs:
        return feed_slices(data)
    msg = feed_slices(collapsed)
    if not _restore(msg, runs):  # not expected (see the module's docstring)
        msg = feed_slices(data)
    return msg


def feed_slices(data: bytes) -> Message:
    """The parser fed in slices: `email.message_from_bytes` decodes the whole mail to one
    str and copies that into a StringIO (4 bytes a character), some five times a big
    mail's size at once. ASCII with surrogateescape decodes byte by byte, so where the
    slices fall changes nothing."""
    parser = email.feedparser.BytesFeedParser(policy=POLICY)
    view = memoryview(data)
    for start in range(0, len(data), FEED_CHUNK):
        parser.feed(bytes(view[start:start + FEED_CHUNK]))
    return parser.close()


def _single_part(data: bytes) -> Message | None:
    """A mail that is no tree: the parser's reading of its head and first blank line, the
    rest of the bytes its body; None for any other mail.

    For such a mail the parser makes the body of every line after the head, joined as
    they came, and records no defect there: so it reads up to the first blank line only
    (the head ends there at the latest), and the rest is the payload, decoded as the
    parser decodes (ASCII, surrogateescape). A head that might name a tree (the words
    "multipart" or "message/" anywhere in it) is read the whole way.
    """
    crlf = data.find(b"\n\r\n")
    # the first LF LF before it (a CRLF mail has none: not looked for to its end)
    lf = data.find(b"\n\n", 0, crlf + 1 if crlf >= 0 else len(data))
    if lf >= 0:
        cut = lf + 2
    elif crlf >= 0:
        cut = crlf + 3
    else:
        return None
    head = data[:cut].lower()
    if b"multipart" in head or b"message/" in head:
        return None
    msg = feed_slices(data[:cut])
    if msg.get_content_maintype() in ("multipart", "message"):
        return None  # not reached: the head names no such type
    # the payload itself: get_payload() would decode its 8-bit bytes by the charset
    body = msg._payload
    rest = str(memoryview(data)[cut:], "ascii", "surrogateescape")
    msg.set_payload(body + rest if body else rest)
    return msg


def _collapse(data: bytes) -> tuple[bytes, dict[str, str]]:
    """`data` with each long base64 run (less its last line end) replaced by a placeholder
    line, and the runs by placeholder; ({}) when there is none."""
    runs: dict[str, str] = {}
    pieces: list[bytes] = []
    pos = 0
    prefix = ""
    view = memoryview(data)  # the run decoded straight from the mail, not copied first
    for match in _BASE64_RUN.finditer(data):
        if not prefix:
            prefix = _new_prefix(data)
        start, end = match.span(1)
        end -= 2 if data[end - 2:end] == b"\r\n" else 1
        token = f"{prefix}x{len(runs)}"
        runs[token] = str(view[start:end], "ascii")
        pieces += [data[pos:start], token.encode()]
        pos = end
    if not runs:
        return data, runs
    pieces.append(data[pos:])
    return b"".join(pieces), runs


def _new_prefix(data: bytes) -> str:
    """A placeholder prefix (base64 letters) that the mail does not hold."""
    while True:
        prefix = "hdrun" + secrets.token_hex(8)
        if prefix.encode() not in data:  # 64 random bits: the first one, in practice
            return prefix


def _restore(msg: Message, runs: dict[str, str]) -> bool:
    """Put the runs back where the placeholders landed; False unless each was found
    exactly once."""
    found: list[str] = []

    def run_of(match: re.Match[str]) -> str:
        text = match.group()
        if text not in runs:  # one of the mail's own: it was checked not to hold ours
            return text
        found.append(text)
        return runs[text]

    stack = [msg]
    while stack:  # not recursive: hostile mail nests deep
        part = stack.pop()
        # the payload itself (a str, or the list of sub-messages), as in _single_part
        payload = part._payload
        if isinstance(payload, str) and "hdrun" in payload:
            # a base64 body is the run alone: its text itself, not a copy made by sub()
            part._payload = run_of(match) if (match := _PLACEHOLDER.fullmatch(payload)) \
                else _PLACEHOLDER.sub(run_of, payload)
        elif isinstance(payload, list):
            stack += [p for p in payload if isinstance(p, Message)]
        for name in ("preamble", "epilogue"):
            value = getattr(part, name, None)
            if isinstance(value, str) and "hdrun" in value:
                setattr(part, name, _PLACEHOLDER.sub(run_of, value))
    return sorted(found) == sorted(runs)
