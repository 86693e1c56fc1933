"""Tell garbage from mail, and repair header blocks that real mailers get wrong. Pure.

Python's parser ends the header block at the first line it does not recognise and
treats everything after it as body, so one bad line in the head loses From and
Subject. These repairs happen on the bytes, before the stdlib sees them, and each
one is recorded as a defect so that nothing is changed silently.
"""

from __future__ import annotations

import re

_BINARY_MAGIC = {
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": "a binary OLE2 file (Outlook .msg or Office document)",
    b"%PDF-": "a PDF document",
    b"PK\x03\x04": "a ZIP archive",
    b"\x1f\x8b": "gzip-compressed data",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
}
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")
_HEADER = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")
_OBS_HEADER = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]+:")
_BSMTP = re.compile(rb"(?i)(HELO|EHLO|MAIL FROM:|RCPT TO:|RSET)\b")
_BSMTP_END = re.compile(rb"\r?\n\.\r?\n(QUIT\r?\n?)?\s*$", re.IGNORECASE)
# Header names that only mail has; a "header block" of other words is prose.
_MAIL_HEADERS = frozenset(
    {
        "from",
        "sender",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "received",
        "return-path",
        "mime-version",
        "delivered-to",
        "reply-to",
        "in-reply-to",
        "references",
        "x-original-to",
        "envelope-to",
    }
)
_MAIL_PREFIXES = ("content-", "x-", "resent-", "list-", "dkim-", "arc-", "authentication-")
MAX_HEAD_SCAN = 1024 * 1024
_BLANK_LINE = re.compile(rb"\n\r*\n")
# a CR that is not the start of a CRLF (CR-CR-LF has one)
_STRAY_CR = re.compile(rb"\r(?!\n)")
_CR_BEFORE_LINE = re.compile(rb"\r+(?=[\x21-\x39\x3b-\x7e]+[ \t]*:|[ \t])")


def garbage_reason(raw: bytes) -> str | None:
    """Why these bytes cannot be a mail, or None when they may be one."""
    if not raw.strip():
        return "empty message: no bytes other than whitespace"
    for magic, kind in _BINARY_MAGIC.items():
        if raw.startswith(magic):
            return f"not an RFC 5322 message: the bytes are {kind}"
    sample = raw[:2048]
    if len(_CONTROL.findall(sample)) > max(8, len(sample) // 50):
        return "not an RFC 5322 message: the start of the data is binary"
    return None


def is_mail_header(name: str) -> bool:
    lowered = name.strip().lower()
    return lowered in _MAIL_HEADERS or lowered.startswith(_MAIL_PREFIXES)


def repair_head(raw: bytes) -> tuple[bytes, list[str]]:
    """Undo envelope wrappers and header-block damage; returns the bytes and the defects."""
    defects: list[str] = []
    data = raw
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
        defects.append("LeadingByteOrderMark")
    if _BSMTP.match(data):
        data = _strip_bsmtp(data, defects)
    stripped = data.lstrip(b"\r\n\t ")
    if stripped is not data and len(stripped) != len(data) and _HEADER.match(stripped):
        data = stripped
        defects.append("LeadingBlankLines")
    data = _repair_carriage_returns(data, defects)
    return _repair_lines(data, defects), defects


def _repair_carriage_returns(data: bytes, defects: list[str]) -> bytes:
    """A CR that is not part of a CRLF must not end the head.

    The stdlib takes a bare CR for a line end, so `To: x\\r\\r\\n` (s-nail wrote it) is
    a header line plus a blank line: the rest of the head lands in the body. In a head
    that has LF line ends, a run of CRs before LF is one line end, a bare CR before a
    field or a fold starts a line, and any other bare CR is a space. A mail with CR
    line ends only (no LF at all) is left alone: the stdlib reads those correctly.
    """
    end = _head_end(data)
    # _head_end stops before the last field's LF, so its CRLF would look like a bare
    # CR: the head scanned here keeps that LF (every CRLF mail read as damaged)
    if data[end : end + 1] == b"\n":
        end += 1
    head = data[:end]
    if b"\n" not in head or not _STRAY_CR.search(head):
        return data
    head = re.sub(rb"\r+\n", b"\r\n", head)
    head = _CR_BEFORE_LINE.sub(b"\r\n", head)
    head = re.sub(rb"\r(?!\n)", b" ", head)
    defects.append("StrayCarriageReturnInHead")
    return head + data[end:]


def _strip_bsmtp(data: bytes, defects: list[str]) -> bytes:
    match = re.search(rb"(?im)^DATA[ \t]*\r?\n", data[: 64 * 1024])
    if not match:
        return data
    defects.append("BSMTPEnvelope")
    body = data[match.end() :]
    end = _BSMTP_END.search(body)
    if end:
        body = body[: end.start()] + b"\n"
    # SMTP dot-stuffing doubled every leading dot
    return re.sub(rb"(?m)^\.\.", b".", body)


def _repair_lines(data: bytes, defects: list[str]) -> bytes:
    """Fix obsolete `Name :` syntax and drop stray non-header lines inside the head."""
    head_end = _head_end(data)
    lines = data[:head_end].split(b"\n")
    out: list[bytes] = []
    changed = False
    for i, line in enumerate(lines):
        if _is_header_line(line, first=i == 0):
            out.append(line)
        elif obs := _OBS_HEADER.match(line):
            out.append(obs.group(1) + b":" + line[obs.end() :])
            defects.append("ObsoleteHeaderSyntax")
            changed = True
        elif out and _rest_is_head(lines[i + 1 :]):
            defects.append("InvalidHeaderLineDropped")
            changed = True
        else:
            # prose: the stdlib will record a missing header/body separator
            return data if not changed else b"\n".join(out + lines[i:]) + data[head_end:]
    return b"\n".join(out) + data[head_end:] if changed else data


def _head_end(data: bytes) -> int:
    """Where the blank line after the head starts (the window's end when there is none)."""
    found = _BLANK_LINE.search(data, 0, MAX_HEAD_SCAN)
    return found.start() if found else min(len(data), MAX_HEAD_SCAN)


def _is_header_line(line: bytes, first: bool) -> bool:
    if line[:1] in (b" ", b"\t"):
        return not first
    unix_from = first and line.startswith(b"From ") and not _OBS_HEADER.match(line)
    return bool(_HEADER.match(line)) or unix_from


def _rest_is_head(rest: list[bytes]) -> bool:
    """Lines after a stray line are still headers if most of them look like headers."""
    sample = [line for line in rest[:20] if line.strip()]
    if not sample:
        return False
    heads = [bool(_HEADER.match(line) or _OBS_HEADER.match(line)) for line in sample]
    good = sum(h or line[:1] in (b" ", b"\t") for h, line in zip(heads, sample, strict=True))
    return good * 4 >= len(sample) * 3 and any(heads)
