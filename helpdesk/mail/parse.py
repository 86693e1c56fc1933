"""bytes -> ParsedMail. Pure: no I/O, no database, no config.

Decoding happens here and only here. Python's `email` package parses almost
anything but raises later, on access, for broken mail (missing boundaries,
unknown charsets, odd address groups); every access below is therefore guarded
and falls back to a cruder reading, recording what went wrong in `defects`.
ParseError is the only exception that leaves parse(): it means "not a mail",
and its message is the reason shown next to the quarantined file.
"""

from __future__ import annotations

import email.parser
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from helpdesk.errors import ParseError
from helpdesk.mail.feed import POLICY, feed
from helpdesk.mail.mimeparts import Attachment, Parts, collect
from helpdesk.mail.mimetext import (
    charset_alias,
    clean_header_text,
    decode_bytes,
    decode_header_value,
    html_to_text,
    normalise_text,
    sanitise_html,
    undo_surrogates,
)
from helpdesk.mail.rawhead import garbage_reason, is_mail_header, repair_head

__all__ = [
    "Attachment",
    "ParsedMail",
    "charset_alias",
    "clean_header_text",
    "content_hash",
    "decode_bytes",
    "decode_header_value",
    "parse",
]

# Headers whose values differ between deliveries of the same mail (trace fields
# added by each hop, IMAP vs SMTP) are left out of the content hash.
_HASHED_HEADERS = (
    "from", "to", "cc", "subject", "date", "message-id", "in-reply-to",
    # the same bytes under another Content-Type are another mail
    "content-type", "content-transfer-encoding",
)
# Fields that hops, filters and mail stores add (name prefixes): never hashed.
_TRANSPORT_HEADERS = (
    "received", "return-path", "delivered-to", "x-original-to", "envelope-to", "x-envelope-",
    "authentication-results", "received-spf", "arc-", "x-spam", "x-virus", "x-received",
    "status", "x-status", "x-keywords", "x-uid", "content-length", "lines",
)
_FIELD = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")
# controls but the folding whitespace that separates ids (tab, LF)
_ID_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_MSGID = re.compile(r"<([^<>\s]+)>")
_LOOSE_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
# getaddresses() recurses per address: a 135 KB To header exhausts the stack.
MAX_ADDRESS_HEADER = 16 * 1024
_HASH_SLICE = 64 * 1024


@dataclass(frozen=True)
class ParsedMail:
    message_id: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    from_addr: str
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reply_to: tuple[str, ...]
    delivered_to: tuple[str, ...]
    subject: str
    date: datetime | None
    headers: tuple[tuple[str, str], ...]
    body_text: str
    body_html: str
    attachments: tuple[Attachment, ...]
    defects: tuple[str, ...]
    size: int
    content_hash: str
    content_type: str = "text/plain"
    # True when body_text was derived from the HTML part (there was no text part)
    body_text_from_html: bool = False

    def header(self, name: str) -> str | None:
        """The first value of a header, decoded; None when absent."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    @property
    def participants(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.from_addr, *self.to, *self.cc)))


def content_hash(raw: bytes) -> str:
    """A hash of what the sender wrote: key headers and body, not trace headers.

    When the head cannot be told from the body (a line in it is no header field)
    or no hashed header is there, everything but leading trace fields is hashed:
    otherwise every such mail (a one-liner, a ZIP, an alert script's output)
    would share one key and all but the first would be dropped as duplicates.
    Never raises, so even a mail that cannot be parsed has a dedupe key.

    The head's lines are read one at a time (`_lines`), the body a slice of lines at a
    time (`_hash_text`): a 25 MiB mail split into a list and joined again cost some six
    times its size at once.
    """
    fields, body_at = _head_fields(_lines(raw))
    named = [(_field_name(f), f) for f in fields]
    if body_at is None or not any(name in _HASHED_HEADERS for name, _ in named):
        return _whole_hash(raw)
    if any(name == "message-id" for name, _ in named):
        wanted = [f for name, f in named if name in _HASHED_HEADERS]
    else:
        # the hash is then the whole dedupe key: a script's mails may differ only in
        # a field of its own (Host:, X-Check:), so every field but transport ones counts
        wanted = [f for name, f in named if not name.startswith(_TRANSPORT_HEADERS)]
    digest = hashlib.sha256()
    for item in sorted(wanted):
        digest.update(b" ".join(item.split()) + b"\n")
    digest.update(b"\n")
    _hash_text(digest.update, raw, _line_offset(raw, body_at))
    return digest.hexdigest()


def _lines(raw: bytes, skip: int = 0) -> Iterator[bytes]:
    """The lines `raw.replace(b"\r\n", b"\n").split(b"\n")` gives, one at a time, from
    the `skip`th on (the hash's line format: it must never change, stored keys use it)."""
    pos = index = 0
    while (end := raw.find(b"\n", pos)) >= 0:
        if index >= skip:
            # the CR of a CRLF; a line of its own (end == pos) has none
            yield raw[pos:end - 1] if end > pos and raw[end - 1] == 13 else raw[pos:end]
        index += 1
        pos = end + 1
    if index >= skip:
        yield raw[pos:]


def _line_offset(raw: bytes, index: int) -> int:
    """Where `_lines(raw)`'s line `index` starts; len(raw) + 1 when there is none."""
    pos = 0
    for _ in range(index):
        end = raw.find(b"\n", pos)
        if end < 0:
            return len(raw) + 1
        pos = end + 1
    return pos


def _hash_text(update: Callable[[bytes], object], raw: bytes, start: int) -> None:
    """Hash the lines of `raw` from offset `start` on as `b"\n".join(lines).rstrip()
    .split(b"\n")`, each line rstripped: transports add or drop trailing newlines and
    spaces. That is the rstripped lines joined by LF, without the trailing blank ones,
    and one LF: made a slice of lines at a time (a C loop; one update per line cost
    1 ms per 100 KB), holding back the LFs of blank lines until a line with text
    shows that they are not the trailing ones. (The CR of a CRLF is whitespace too.)
    """
    held = 0
    pos = start
    while pos <= len(raw):
        end = raw.find(b"\n", pos + _HASH_SLICE)
        stop = len(raw) if end < 0 else end
        lines = raw[pos:stop].split(b"\n")
        piece = b"\n".join([line.rstrip() for line in lines])
        if pos > start:
            held += 1  # the LF between this slice and the one before
        text = piece.rstrip(b"\n")
        if text:
            update(b"\n" * held + text if held else text)
            held = len(piece) - len(text)
        else:
            held += len(piece)
        pos = stop + 1
    update(b"\n")


def _head_fields(lines: Iterable[bytes]) -> tuple[list[bytes], int | None]:
    """The head's fields (unfolded) and the index of the body's first line; None for
    the index when a line before the blank line is neither a field nor a fold."""
    fields: list[bytes] = []
    count = 0
    for i, line in enumerate(lines):
        count = i + 1
        if not line.strip(b"\r"):
            return fields, i + 1
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b" " + line.strip()
        elif _FIELD.match(line):
            fields.append(line.strip())
        else:
            return fields, None
    return fields, count


def _field_name(field: bytes) -> str:
    return field.split(b":", 1)[0].strip().lower().decode("latin-1")


def _whole_hash(raw: bytes) -> str:
    """Every line but the trace fields a hop puts on top (so a redelivery matches)."""
    start = 0
    lines = _lines(raw)
    line = next(lines)  # split() gives at least one line
    while line is not None and _FIELD.match(line) and \
            _field_name(line).startswith(_TRANSPORT_HEADERS):
        start += 1
        line = next(lines, None)
        while line is not None and line[:1] in (b" ", b"\t"):
            start += 1
            line = next(lines, None)
    digest = hashlib.sha256(b"whole mail\n")  # never equal to a head-and-body hash
    _hash_text(digest.update, raw, _line_offset(raw, start))
    return digest.hexdigest()


def parse(raw: bytes) -> ParsedMail:
    """Parse one mail. Raises ParseError only, and only when the bytes are not a mail."""
    try:
        return _parse(bytes(raw))
    except ParseError:
        raise
    except Exception as err:  # last line of defence: the pipeline must see a reason
        raise ParseError(f"parser failure: {type(err).__name__}: {err}"[:300]) from err


def html_as_sent(raw: bytes) -> str:
    """The mail's HTML parts as the sender wrote them, NOT sanitised: only for a caller
    that sanitises with its own allow-list (the desk's formatted view keeps harmless
    inline styles, which body_html drops); "" when there is none or it is not a mail."""
    try:
        data, defects = repair_head(bytes(raw))
        return "\n".join(_structure(data, defects)[1].html)
    except Exception:  # the same hostile bytes parse() survives: nothing to show
        return ""


def _parse(raw: bytes) -> ParsedMail:
    reason = garbage_reason(raw)
    if reason:
        raise ParseError(reason)
    data, defects = repair_head(raw)
    msg, parts = _structure(data, defects)
    raw_headers = [(str(k), str(v)) for k, v in msg.raw_items()]
    if not any(is_mail_header(name) for name, _ in raw_headers):
        raise ParseError("not an RFC 5322 message: text without any mail header")
    charsets = parts.charsets
    headers = [(name, decode_header_value(value, defects, charsets))
               for name, value in raw_headers]
    raw_map = _HeaderMap(raw_headers)
    hmap = _HeaderMap(headers)
    if not (raw_map.get("from") or raw_map.get("sender")):
        defects.append("MissingFrom")
    html = "\n".join(parts.html)
    body_text = normalise_text("\n\n".join(t for t in parts.text if t.strip()))
    from_html = not body_text and bool(html.strip())
    if from_html:
        body_text = normalise_text(html_to_text(html, defects))
    from_name, from_addr = _first_address(
        raw_map.get("from") or raw_map.get("sender") or "", defects, charsets)
    return ParsedMail(
        message_id=_first_msgid(_id_text(hmap.get("message-id") or "", defects)),
        in_reply_to=tuple(_msgids(_id_text(hmap.get("in-reply-to") or "", defects))),
        references=tuple(_msgids(_id_text(" ".join(hmap.all("references")), defects))),
        from_addr=from_addr,
        from_name=from_name,
        to=_addresses(raw_map.all("to"), defects, charsets),
        cc=_addresses(raw_map.all("cc"), defects, charsets),
        reply_to=_addresses(raw_map.all("reply-to"), defects, charsets),
        delivered_to=_addresses(
            raw_map.all("delivered-to") + raw_map.all("x-original-to"), defects, charsets
        ),
        subject=clean_header_text(hmap.get("subject") or ""),
        date=_date(hmap.get("date"), defects),
        headers=tuple(headers),
        body_text=body_text,
        body_html=sanitise_html(html) if html.strip() else "",
        attachments=tuple(parts.attachments),
        defects=tuple(dict.fromkeys(defects)),
        size=len(raw),
        content_hash=content_hash(raw),
        content_type=_content_type(msg, defects),
        body_text_from_html=from_html,
    )


def _structure(data: bytes, defects: list[str]) -> tuple[Message, Parts]:
    """The stdlib's tree and what we read from it; headers only when nesting is hostile."""
    try:
        msg = feed(data)
        defects.extend(type(d).__name__ for d in msg.defects)
        return msg, collect(msg, data, defects)
    except RecursionError:
        pass
    # The stdlib parser recurses once per nesting level; keep the headers and
    # the body bytes (as an attachment, so nothing is lost) and skip the tree.
    defects.append("MimeNestingTooDeep: body kept unparsed")
    msg = email.parser.BytesParser(policy=POLICY).parsebytes(data, headersonly=True)
    body = data.replace(b"\r\n", b"\n").partition(b"\n\n")[2]
    unparsed = Attachment("unparsed-body.txt", "application/octet-stream", body)
    return msg, Parts(attachments=[unparsed], defects=defects)


def _content_type(msg: Message, defects: list[str]) -> str:
    try:
        return msg.get_content_type()
    except Exception as err:
        defects.append(f"ContentType: {type(err).__name__}")
        return "text/plain"


class _HeaderMap:
    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self._items = [(k.lower(), v) for k, v in headers]

    def get(self, name: str) -> str | None:
        return next((v for k, v in self._items if k == name), None)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self._items if k == name]


def _parse_addresses(
    values: list[str], defects: list[str], charsets: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """(display name, address) pairs from raw header values; names decoded after splitting.

    Splitting before RFC 2047 decoding matters: an encoded name may contain a comma.
    Raw 8-bit bytes are read like any other header's (`charsets`: the body's).
    """
    if not values:
        return []
    values = [undo_surrogates(v, charsets, defects) for v in values]
    joined = ", ".join(values)
    pairs: list[tuple[str, str]] = []
    if len(joined) <= MAX_ADDRESS_HEADER:
        try:
            pairs = [(n, a) for n, a in getaddresses(values) if "@" in a]
        except Exception as err:
            defects.append(f"AddressParse: {type(err).__name__}")
    else:
        defects.append("AddressHeaderTooLong")
    if not pairs and "@" in joined:
        pairs = [("", a) for a in _LOOSE_ADDRESS.findall(joined[:1_000_000])]
    return [
        (clean_header_text(_id_text(decode_header_value(n), defects)),
         _id_text(a, defects).strip().lower())
        for n, a in pairs
    ]


def _first_address(
    value: str, defects: list[str], charsets: Sequence[str]
) -> tuple[str, str]:
    pairs = _parse_addresses([value], defects, charsets)
    return pairs[0] if pairs else ("", "")


def _addresses(
    values: list[str], defects: list[str], charsets: Sequence[str]
) -> tuple[str, ...]:
    return tuple(dict.fromkeys(addr for _, addr in _parse_addresses(values, defects, charsets)))


def _id_text(value: str, defects: list[str]) -> str:
    """An identifier (Message-ID, address, the name with it) without control characters.

    Stored as they came, they would reach the headers of every later mail on the ticket
    (acknowledgement, agents' replies, References), where the stdlib refuses them.
    Removed once, here, so that the same id in a later reply's References matches.
    """
    cleaned = _ID_CONTROL.sub("", value)
    if cleaned != value:
        defects.append("ControlCharacterInIdentifier")
    return cleaned


def _msgids(value: str) -> list[str]:
    # ids without "@" (e.g. git send-email's "<yes>") would merge unrelated threads
    return [m for m in _MSGID.findall(value) if "@" in m]


def _first_msgid(value: str) -> str:
    ids = _MSGID.findall(value)
    if ids:
        return ids[0]
    bare = value.split()
    return bare[0] if len(bare) == 1 else ""


def _date(value: str | None, defects: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except Exception:
        defects.append("InvalidDate")
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

