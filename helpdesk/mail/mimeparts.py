"""Walk a parsed MIME tree into body text, HTML and attachments. Pure.

The walk is bounded (depth and part count) because hostile mail nests parts
thousands deep. A multipart whose boundary was never found reaches us as one
string; those are recovered afterwards: first mail-parser reads the whole mail
and its reading wins if it found more; otherwise we guess the boundary from the
payload itself, and at worst keep the payload as text.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from email.errors import InvalidBase64LengthDefect
from email.message import Message

import mailparser

from helpdesk.mail.mimetext import clean_header_text, decode_bytes, decode_header_value

MAX_MIME_DEPTH = 32
MAX_PARTS = 500
_BOUNDARY_PARAM = re.compile(r"""(?i)boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))""")
_BOUNDARY_LINE = re.compile(r"(?m)^--([^\s]{1,200}?)(?:--)?[ \t]*\r?$\n(?=[\w-]+:)")
_PART_HEADERS = re.compile(r"(?i)^\s*content-[\w-]+:")
# a base64 body with nothing to repair: the alphabet and line ends, padding at the end only
_CLEAN_BASE64 = re.compile(r"[A-Za-z0-9+/\r\n]*(?:=[\r\n]*){0,2}")
_BASE64_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/\r\n"
_CHECK_SLICE = 64 * 1024
_BODY_TYPES = ("text/plain", "text/html")
_NAMED_TYPES = {
    "message/rfc822": "message.eml",
    "message/delivery-status": "delivery-status.txt",
    "message/disposition-notification": "disposition-notification.txt",
    "message/rfc822-headers": "headers.txt",
    "message/feedback-report": "feedback-report.txt",
}
_EXTENSIONS = {"text/calendar": "ics", "text/plain": "txt", "text/html": "html"}


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


@dataclass
class Parts:
    text: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    lost: list[tuple[Message, int]] = field(default_factory=list)
    count: int = 0
    # charsets the text parts declared: the best guess for undeclared 8-bit headers
    charsets: list[str] = field(default_factory=list)

    def size(self) -> int:
        return sum(map(len, self.text)) + sum(map(len, self.html)) + len(self.attachments)


def collect(msg: Message, raw: bytes, defects: list[str]) -> Parts:
    """Body text, HTML and attachments of a parsed mail, recovering lost multiparts."""
    parts = Parts(defects=defects)
    walk(msg, parts, 0)
    if not parts.lost:
        return parts
    recovered = _recover_with_mailparser(raw, parts)
    if recovered is not None:
        return recovered
    for part, depth in parts.lost:
        _resplit(part, parts, depth)
    return parts


def walk(part: Message, parts: Parts, depth: int) -> None:
    parts.count += 1
    if parts.count > MAX_PARTS:
        if parts.count == MAX_PARTS + 1:
            parts.defects.append(f"TooManyParts: parts after {MAX_PARTS} skipped")
        return
    ctype = _safe(part.get_content_type, "application/octet-stream", parts.defects)
    parts.defects.extend(type(d).__name__ for d in part.defects)
    if ctype.startswith("multipart/"):
        _walk_multipart(part, parts, depth)
    else:
        _leaf(part, ctype, parts)


def _walk_multipart(part: Message, parts: Parts, depth: int) -> None:
    if depth >= MAX_MIME_DEPTH:
        parts.defects.append(f"MimeNestingTooDeep: parts below depth {MAX_MIME_DEPTH} skipped")
        return
    payload = part.get_payload()
    if isinstance(payload, list):
        for sub in payload:
            if isinstance(sub, Message):
                walk(sub, parts, depth + 1)
    elif isinstance(payload, str) and payload.strip():
        parts.lost.append((part, depth))


def _leaf(part: Message, ctype: str, parts: Parts) -> None:
    defects = parts.defects
    disposition = (_safe(part.get_content_disposition, None, defects) or "").lower()
    filename = _filename(part, defects)
    if ctype.startswith("message/") and ctype != "message/partial":
        name = filename or _NAMED_TYPES.get(ctype) or _default_name(ctype, parts)
        parts.attachments.append(_attachment(part, name, ctype, False, defects))
        return
    if ctype in _BODY_TYPES and disposition != "attachment" and not filename:
        (parts.html if ctype == "text/html" else parts.text).append(_text_of(part, parts))
        return
    # text/enriched, text/richtext and the like: the only readable body some mails have
    if (
        ctype.startswith("text/")
        and ctype != "text/calendar"
        and not disposition
        and not filename
        and not parts.text
    ):
        parts.text.append(_text_of(part, parts))
        return
    if ctype == "text/plain" and disposition == "inline":
        # a named inline text part is shown in the body by mail programs
        parts.text.append(_text_of(part, parts))
    inline = disposition == "inline" or (not disposition and bool(part.get("Content-ID")))
    name = filename or _default_name(ctype, parts)
    parts.attachments.append(_attachment(part, name, ctype, inline, defects))


def _filename(part: Message, defects: list[str]) -> str:
    name = _safe(part.get_filename, None, defects) or ""
    if "=?" in name:  # RFC 2047 inside a parameter: not allowed, but Outlook does it
        name = decode_header_value(name, defects)
    return clean_header_text(str(name))[:255]


def _default_name(ctype: str, parts: Parts) -> str:
    ext = _EXTENSIONS.get(ctype, "bin")
    return f"part-{len(parts.attachments) + 1}.{ext}"


def _attachment(
    part: Message, name: str, ctype: str, inline: bool, defects: list[str]
) -> Attachment:
    data = b""
    if ctype.startswith("message/"):
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            # compat32 re-emits headers as received; SMTP refolding chokes on odd ones
            data = _safe(inner[0].as_bytes, b"", defects)
    if not data:
        data = payload_bytes(part, defects)
    cid = str(part.get("Content-ID", "") or "").strip().strip("<>")
    return Attachment(name or "attachment", ctype, data, inline, clean_header_text(cid))


def payload_bytes(part: Message, defects: list[str]) -> bytes:
    clean = _clean_base64(part)
    if clean is not None:
        return clean
    data = _safe(lambda: part.get_payload(decode=True), None, defects)
    payload = part.get_payload()
    if isinstance(payload, str) and any(
        isinstance(d, InvalidBase64LengthDefect) for d in part.defects
    ):
        # the stdlib hands back the undecoded text when one character dangles
        return _lenient_b64decode(payload, defects)
    if isinstance(data, bytes):
        if str(part.get("Content-Transfer-Encoding", "")).strip().lower() != "base64":
            # the lines of a 7bit, 8bit or quoted-printable body end as the transport
            # ended them (CRLF over SMTP, LF from a maildir or a pipe): MIME's canonical
            # CRLF for both, so one mail is one attachment whichever door it came through
            return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        return data
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


def _clean_base64(part: Message) -> bytes | None:
    """A well-formed base64 body decoded straight from the parsed text; None for any
    other body, which the stdlib decodes (and whose defects it records).

    Why: for base64 the stdlib's decode=True checks the text for surrogates by encoding
    it, encodes it again, splits it into lines and joins them before decoding: a big
    attachment held four times over, the largest part of a big mail's peak. For a body
    it would decode without a defect the bytes are the same: binascii skips line ends.
    """
    payload = part.get_payload()
    # the stdlib's own test of the header (not stripped): a body it leaves undecoded
    # stays undecoded
    if not isinstance(payload, str) or \
            str(part.get("content-transfer-encoding", "")).lower() != "base64":
        return None
    if not _is_clean_base64(payload):
        return None  # padding to repair or stray characters: the stdlib's defects
    try:
        return binascii.a2b_base64(payload)
    except (binascii.Error, ValueError):
        return None


def _is_clean_base64(payload: str) -> bool:
    """`_CLEAN_BASE64.fullmatch(payload)` and a multiple of 4 characters but line ends, by
    C loops over slices (bytes.translate) instead of the regex's per-character steps:
    the alphabet and line ends, then at most two "=" among the line ends at the end."""
    body = payload.rstrip("=\r\n")
    if payload.count("=", len(body)) > 2 or not body.isascii():
        return False
    letters = len(payload) - len(body) - payload.count("\r", len(body)) \
        - payload.count("\n", len(body))
    for start in range(0, len(body), _CHECK_SLICE):
        chunk = body[start:start + _CHECK_SLICE].encode("ascii")
        if chunk.translate(None, _BASE64_LETTERS):
            return False
        letters += len(chunk) - chunk.count(b"\r") - chunk.count(b"\n")
    return letters % 4 == 0


def _lenient_b64decode(text: str, defects: list[str]) -> bytes:
    clean = re.sub(r"[^A-Za-z0-9+/]", "", text)
    clean = clean[: len(clean) - len(clean) % 4] if len(clean) % 4 == 1 else clean
    defects.append("Base64DanglingCharacterDropped")
    try:
        return base64.b64decode(clean + "=" * (-len(clean) % 4))
    except (binascii.Error, ValueError):
        return text.encode("utf-8", "surrogateescape")


def _text_of(part: Message, parts: Parts) -> str:
    # decode=True and our own charset chain: get_content() would replace
    # every byte of a lying charset with U+FFFD instead of trying the fallbacks
    defects = parts.defects
    charset = _safe(part.get_content_charset, None, defects)
    if charset:
        parts.charsets.append(charset)
    return decode_bytes(payload_bytes(part, defects), charset, defects)


def _safe(fn, default, defects: list[str]):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except Exception as err:
        defects.append(f"{type(err).__name__}: {err}"[:200])
        return default


def _recover_with_mailparser(raw: bytes, parts: Parts) -> Parts | None:
    """Take mail-parser's reading of the whole mail when it found more than we did."""
    try:
        mp = mailparser.parse_from_bytes(raw)
        # explicit list checks: a misspelled attribute would silently read as ''
        text = [t for t in mp.text_plain if isinstance(t, str)]
        html = [t for t in mp.text_html if isinstance(t, str)]
        found = Parts(text=text, html=html, defects=parts.defects)
        for item in mp.attachments:
            found.attachments.append(_from_mailparser(item))
    except Exception as err:
        parts.defects.append(f"MailParserFailed: {type(err).__name__}")
        return None
    if found.size() <= parts.size():
        return None
    parts.defects.append("RecoveredWithMailParser")
    found.charsets = parts.charsets
    return found


def _from_mailparser(item: dict[str, object]) -> Attachment:
    payload = str(item.get("payload") or "")
    if item.get("binary"):
        # mail-parser hands binary payloads back as base64 text
        try:
            data = base64.b64decode(payload)
        except (binascii.Error, ValueError):
            data = payload.encode("utf-8", "surrogateescape")
    else:
        data = payload.encode("utf-8", "surrogateescape")
    disposition = str(item.get("content-disposition") or "").lower()
    cid = str(item.get("content-id") or "").strip().strip("<>")
    return Attachment(
        filename=clean_header_text(str(item.get("filename") or ""))[:255] or "attachment",
        content_type=str(item.get("mail_content_type") or "application/octet-stream"),
        data=data,
        inline=disposition.startswith("inline") or (not disposition and bool(cid)),
        content_id=clean_header_text(cid),
    )


def _resplit(part: Message, parts: Parts, depth: int) -> None:
    """A multipart whose declared boundary never occurs: guess the real one."""
    payload = str(part.get_payload())
    for boundary in _boundary_candidates(part, payload):
        wrapped = f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n{payload}'
        msg = email.message_from_bytes(
            wrapped.encode("utf-8", "surrogateescape"), policy=email.policy.compat32
        )
        subs = msg.get_payload()
        if isinstance(subs, list) and subs:
            parts.defects.append(f"RecoveredBoundary: {boundary}"[:200])
            for sub in subs:
                walk(sub, parts, depth + 1)
            return
    if _PART_HEADERS.match(payload):
        parts.defects.append("RecoveredPartWithoutBoundary")
        inner = email.message_from_bytes(
            payload.lstrip().encode("utf-8", "surrogateescape"), policy=email.policy.compat32
        )
        walk(inner, parts, depth + 1)
        return
    parts.defects.append("LostMultipartKeptAsText")
    charset = _safe(part.get_content_charset, None, parts.defects)
    parts.text.append(decode_bytes(payload.encode("utf-8", "surrogateescape"), charset, None))


def _boundary_candidates(part: Message, payload: str) -> list[str]:
    declared = [
        m.group(1) or m.group(2)
        for value in (v for k, v in part.raw_items() if k.lower() == "content-type")
        for m in _BOUNDARY_PARAM.finditer(str(value))
    ]
    seen = Counter(_BOUNDARY_LINE.findall(payload))
    guessed = [b for b, _ in seen.most_common(3)]
    usable = [b for b in dict.fromkeys(declared + guessed) if '"' not in b and "\\" not in b]
    return [b for b in usable if f"--{b}" in payload]
