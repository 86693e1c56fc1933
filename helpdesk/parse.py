"""bytes -> ParsedMail. Pure: no I/O, no database, no config.

Decoding happens here and only here. Python's `email` package parses almost
anything but raises later, on access, for broken mail (missing boundaries,
unknown charsets, odd address groups); every access below is therefore guarded
and falls back to a cruder reading, recording what went wrong in `defects`.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header
from email.message import EmailMessage, Message
from email.utils import getaddresses, parsedate_to_datetime

import nh3
from inscriptis import get_text

from helpdesk.errors import ParseError

# Headers whose values differ between deliveries of the same mail (trace fields
# added by each hop, IMAP vs SMTP); they are left out of the content hash.
_HASHED_HEADERS = ("from", "to", "cc", "subject", "date", "message-id", "in-reply-to")
_MSGID = re.compile(r"<([^<>\s]+)>")
_BAD_HEADER_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x85\u2028\u2029]")
_FALLBACK_CHARSETS = ("utf-8", "cp1252")
MAX_HTML_FOR_TEXT = 2 * 1024 * 1024


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes = field(repr=False)
    inline: bool = False
    content_id: str = ""

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


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

    Never raises, so even a mail that cannot be parsed has a dedupe key.
    """
    head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    wanted: list[bytes] = []
    current: bytes | None = None
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and current is not None:
            current += b" " + line.strip()
            continue
        if current is not None:
            wanted.append(current)
        name = line.split(b":", 1)[0].strip().lower()
        current = line.strip() if name.decode("latin-1") in _HASHED_HEADERS else None
    if current is not None:
        wanted.append(current)
    digest = hashlib.sha256()
    for item in sorted(wanted):
        digest.update(b" ".join(item.split()) + b"\n")
    digest.update(b"\n")
    for line in body.rstrip().split(b"\n"):  # transports add or drop trailing newlines
        digest.update(line.rstrip() + b"\n")
    return digest.hexdigest()


def parse(raw: bytes) -> ParsedMail:
    """Parse one mail. Raises ParseError only when the bytes are not a mail at all."""
    if not raw or not raw.strip():
        raise ParseError("empty message")
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception as err:  # the stdlib parser is documented not to raise; be sure
        raise ParseError(f"unparseable: {type(err).__name__}: {err}") from err
    defects: list[str] = [type(d).__name__ for d in msg.defects]
    headers = _decoded_headers(msg, defects)
    if not headers:
        raise ParseError("no header block: this is not an RFC 5322 message")
    if not any(k.lower() in ("from", "sender", "return-path", "subject") for k, _ in headers):
        raise ParseError("no From, Sender or Subject header: not a mail")
    hmap = _HeaderMap(headers)
    text_parts: list[str] = []
    html_parts: list[str] = []
    attachments: list[Attachment] = []
    _walk(msg, text_parts, html_parts, attachments, defects)
    html = "\n".join(html_parts)
    body_text = "\n\n".join(t for t in text_parts if t.strip())
    if not body_text.strip() and html:
        body_text = _html_to_text(html, defects)
    from_name, from_addr = _first_address(hmap.get("from") or hmap.get("sender") or "")
    return ParsedMail(
        message_id=_first_msgid(hmap.get("message-id") or ""),
        in_reply_to=tuple(_msgids(hmap.get("in-reply-to") or "")),
        references=tuple(_msgids(" ".join(hmap.all("references")))),
        from_addr=from_addr,
        from_name=from_name,
        to=_addresses(hmap.all("to")),
        cc=_addresses(hmap.all("cc")),
        reply_to=_addresses(hmap.all("reply-to")),
        delivered_to=_addresses(hmap.all("delivered-to") + hmap.all("x-original-to")),
        subject=clean_header_text(hmap.get("subject") or ""),
        date=_date(hmap.get("date"), defects),
        headers=tuple(headers),
        body_text=_normalise_text(body_text),
        body_html=nh3.clean(html) if html else "",
        attachments=tuple(attachments),
        defects=tuple(dict.fromkeys(defects)),
        size=len(raw),
        content_hash=content_hash(raw),
        content_type=_safe(lambda: msg.get_content_type(), "text/plain", defects),
    )


def clean_header_text(value: str) -> str:
    """Collapse whitespace and drop characters the stdlib refuses in outgoing headers."""
    return " ".join(_BAD_HEADER_CHARS.sub(" ", value).split())


class _HeaderMap:
    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self._items = [(k.lower(), v) for k, v in headers]

    def get(self, name: str) -> str | None:
        return next((v for k, v in self._items if k == name), None)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self._items if k == name]


def _safe(fn, default, defects: list[str]):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except Exception as err:
        defects.append(f"{type(err).__name__}: {err}"[:200])
        return default


def _decoded_headers(msg: Message, defects: list[str]) -> list[tuple[str, str]]:
    """Decode raw header values ourselves: the policy's header objects raise on odd input."""
    out: list[tuple[str, str]] = []
    for name, value in msg.raw_items():
        out.append((str(name), decode_header_value(str(value), defects)))
    return out


def decode_header_value(value: str, defects: list[str] | None = None) -> str:
    """RFC 2047 encoded-words and raw 8-bit bytes to text; lying charsets are tolerated."""
    value = _undo_surrogates(value)
    try:
        chunks = decode_header(value)
    except Exception as err:
        if defects is not None:
            defects.append(f"HeaderDecode: {type(err).__name__}")
        return _unfold(value)
    parts: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            parts.append(chunk)
        else:
            parts.append(decode_bytes(chunk, charset, defects))
    # decode_header drops the whitespace between an encoded word and plain text
    joined = ""
    for i, part in enumerate(parts):
        if i and chunks[i - 1][1] != chunks[i][1] and not joined.endswith(" "):
            if not part.startswith(" "):
                joined += " "
        joined += part
    return _unfold(joined)


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n[ \t]+", " ", value).replace("\r", "").replace("\n", " ").strip()


def _undo_surrogates(value: str) -> str:
    """Raw 8-bit header bytes arrive surrogate-escaped; read them as UTF-8, else cp1252."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    return decode_bytes(data, None, None)


def decode_bytes(data: bytes, charset: str | None, defects: list[str] | None) -> str:
    """Decode with the declared charset, falling back when it is unknown or lies."""
    candidates = [charset] if charset and charset.lower() not in ("unknown-8bit",) else []
    for name in (*candidates, *_FALLBACK_CHARSETS):
        try:
            return data.decode(_charset_alias(name))
        except LookupError:
            if defects is not None:
                defects.append(f"UnknownCharset: {name}")
        except UnicodeDecodeError:
            if defects is not None and name == charset:
                defects.append(f"CharsetMismatch: {name}")
    return data.decode("latin-1")


def _charset_alias(name: str) -> str:
    lowered = name.strip().strip('"').lower()
    aliases = {
        "ks_c_5601-1987": "cp949",
        "iso-8859-8-i": "iso-8859-8",
        "x-mac-cyrillic": "mac_cyrillic",
        "gb2312": "gb18030",
        "gbk": "gb18030",
        "x-unknown": "utf-8",
        "unicode-1-1-utf-7": "utf-7",
        "windows-874": "cp874",
    }
    return aliases.get(lowered, lowered)


def _first_address(value: str) -> tuple[str, str]:
    for name, addr in getaddresses([value]):
        if addr:
            return clean_header_text(name), addr.strip().lower()
    return "", ""


def _addresses(values: list[str]) -> tuple[str, ...]:
    found = [addr.strip().lower() for _, addr in getaddresses(values) if "@" in addr]
    return tuple(dict.fromkeys(found))


def _msgids(value: str) -> list[str]:
    # ids without "@" (e.g. git send-email's "<yes>") would merge unrelated threads
    return [m for m in _MSGID.findall(value) if "@" in m]


def _first_msgid(value: str) -> str:
    ids = _MSGID.findall(value)
    if ids:
        return ids[0]
    bare = value.strip()
    return bare if bare and " " not in bare else ""


def _date(value: str | None, defects: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except Exception:
        defects.append("InvalidDate")
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _walk(
    part: Message,
    text_parts: list[str],
    html_parts: list[str],
    attachments: list[Attachment],
    defects: list[str],
) -> None:
    ctype = _safe(part.get_content_type, "application/octet-stream", defects)
    if ctype.startswith("message/") and ctype != "message/partial":
        # stdlib calls message/rfc822 and delivery-status "multipart": keep them whole
        name = _safe(part.get_filename, None, defects) or "message.eml"
        attachments.append(_attachment(part, name, ctype, False, defects))
        return
    if part.is_multipart():
        for sub in _safe(part.get_payload, [], defects) or []:
            if isinstance(sub, Message):
                _walk(sub, text_parts, html_parts, attachments, defects)
        return
    disposition = (_safe(part.get_content_disposition, None, defects) or "").lower()
    filename = _safe(part.get_filename, None, defects)
    if ctype == "message/rfc822" or (ctype.startswith("message/") and ctype != "message/partial"):
        attachments.append(_attachment(part, filename or "message.eml", ctype, False, defects))
        return
    is_text = ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename
    if is_text or (ctype.startswith("text/") and not ctype.startswith("text/calendar")
                   and disposition == "" and not filename and not text_parts and ctype != "text/html"):
        text = _text_of(part, defects)
        (html_parts if ctype == "text/html" else text_parts).append(text)
        return
    inline = disposition == "inline" or (not disposition and bool(part.get("Content-ID")))
    name = filename or _default_name(ctype, len(attachments))
    attachments.append(_attachment(part, name, ctype, inline, defects))


def _default_name(ctype: str, index: int) -> str:
    ext = {"text/calendar": "ics", "text/plain": "txt", "text/html": "html"}.get(ctype, "bin")
    return f"part-{index + 1}.{ext}"


def _attachment(
    part: Message, name: str, ctype: str, inline: bool, defects: list[str]
) -> Attachment:
    if ctype.startswith("message/"):
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            data = _safe(lambda: inner[0].as_bytes(policy=email.policy.SMTP), b"", defects)
        else:
            data = _payload_bytes(part, defects)
    else:
        data = _payload_bytes(part, defects)
    cid = str(part.get("Content-ID", "") or "").strip("<> ")
    return Attachment(
        filename=clean_header_text(str(name))[:255] or "attachment",
        content_type=ctype,
        data=data,
        inline=inline,
        content_id=cid,
    )


def _payload_bytes(part: Message, defects: list[str]) -> bytes:
    data = _safe(lambda: part.get_payload(decode=True), None, defects)
    if data is None:
        payload = part.get_payload()
        data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    return data


def _text_of(part: Message, defects: list[str]) -> str:
    if isinstance(part, EmailMessage):
        try:
            content = part.get_content()
            if isinstance(content, str):
                return _undo_surrogates(content)
        except Exception as err:
            defects.append(f"{type(err).__name__}: {err}"[:200])
    data = _payload_bytes(part, defects)
    return decode_bytes(data, part.get_content_charset(), defects)


def _html_to_text(html: str, defects: list[str]) -> str:
    try:
        return get_text(html[:MAX_HTML_FOR_TEXT])
    except Exception as err:
        defects.append(f"HtmlToText: {type(err).__name__}")
        return re.sub(r"<[^>]+>", " ", html)


def _normalise_text(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(lines).strip("\n").replace("\x00", "")
