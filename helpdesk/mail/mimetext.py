"""Text-level helpers for parse.py: charsets, header words, HTML, raw-head repair. Pure.

Everything here is total: given any input it returns a value and, where it had
to guess, appends a short defect string instead of raising.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.header import decode_header

import nh3
from inscriptis import get_text

# Characters the stdlib refuses in outgoing header values (see dependencies.md),
# plus C0 controls that break databases and terminals.
_BAD_HEADER_CHARS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
# between the "=" and "?" of a leftover "=?" or "?=": where a space breaks it apart.
# Zero-width, so overlapping pairs ("?=?") are all split in one pass and cleaning
# cleaned text changes nothing.
_LEFTOVER_WORD = re.compile(r"(?<==)(?=\?)|(?<=\?)(?==)")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
# what surrogateescape makes of a raw 8-bit byte
_SURROGATE = re.compile("[\udc80-\udcff]")
MAX_HTML_FOR_TEXT = 2 * 1024 * 1024
MAX_HEADER_DECODE = 64 * 1024

# Declared names that Python does not know, or whose real-world use is a superset
# (senders label cp1252 as latin-1 and cp949 as euc-kr; WHATWG does the same).
_ALIASES = {
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "x-mac-cyrillic": "mac_cyrillic",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cn-gb": "gb18030",
    "big5": "big5hkscs",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "unicode-1-1-utf-7": "utf-7",
    "windows-874": "cp874",
    "utf8": "utf-8",
}
# Labels that carry no information: go straight to the fallbacks.
_MEANINGLESS = {"", "unknown-8bit", "x-unknown", "unknown", "default", "x-user-defined", "charset"}
_FALLBACKS = ("utf-8", "cp1252")

_HTML_CLEANER = nh3.Cleaner(
    # dir= keeps right-to-left mail readable; cid: keeps inline images resolvable.
    attributes={**nh3.ALLOWED_ATTRIBUTES, "*": {"dir", "lang", "title"}},
    url_schemes=nh3.ALLOWED_URL_SCHEMES | {"cid"},
)


def charset_alias(name: str) -> str:
    lowered = name.strip().strip("\"'").lower()
    return _ALIASES.get(lowered, lowered)


def decode_bytes(data: bytes, charset: str | None, defects: list[str] | None) -> str:
    """Decode with the declared charset, falling back when it is unknown or lies."""
    sniffed = _bom_charset(data)
    declared = charset_alias(charset or "")
    if sniffed:
        candidates: tuple[str, ...] = (sniffed,)
    elif declared in _MEANINGLESS:
        candidates = _FALLBACKS
    else:
        candidates = (declared, *_FALLBACKS)
    for name in candidates:
        try:
            return data.decode(name)
        except LookupError:
            _note(defects, f"UnknownCharset: {charset}")
        except UnicodeDecodeError:
            if name == declared:
                _note(defects, f"CharsetMismatch: {charset}")
            if name == "utf-8" and (text := _mostly_utf8(data)) is not None:
                _note(defects, "InvalidUTF8Bytes")
                return text
        except Exception:  # some CJK codecs raise odd errors on garbage
            _note(defects, f"CharsetDecodeFailed: {charset}")
    return data.decode("latin-1")


def _bom_charset(data: bytes) -> str | None:
    if data[:3] == b"\xef\xbb\xbf":
        return "utf-8-sig"
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    return None


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with a few broken sequences is still UTF-8: cp1252 would garble it all."""
    text = data.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ch > "\x7f") - bad
    return text if good >= 2 * bad else None


def _note(defects: list[str] | None, item: str) -> None:
    if defects is not None:
        defects.append(item[:200])


def undo_surrogates(
    value: str, charsets: Sequence[str] = (), defects: list[str] | None = None
) -> str:
    """Raw 8-bit header bytes arrive surrogate-escaped; their charset is declared nowhere.

    UTF-8 is allowed there (RFC 6532) and tried first; then the charsets of the body
    parts (a mail program writes its headers in the body's charset), then cp1252 and
    Latin-1. Anything but UTF-8 is a guess, and recorded as one.
    """
    if not _SURROGATE.search(value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if (text := _mostly_utf8(data)) is not None:
        _note(defects, "InvalidUTF8Bytes")
        return text
    for name in (*_ascii_supersets(charsets), "cp1252", "latin-1"):
        try:
            text = data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
        _note(defects, f"Undeclared8bitHeader: read as {name}")
        return text
    return data.decode("latin-1")  # not reached: Latin-1 decodes every byte


def _ascii_supersets(charsets: Sequence[str]) -> list[str]:
    """The charsets in which ASCII is ASCII: a header's field names and syntax are."""
    usable = []
    for name in dict.fromkeys(charset_alias(c) for c in charsets):
        try:
            if b"From: <a@b>".decode(name) == "From: <a@b>" and name not in ("utf-8", "ascii"):
                usable.append(name)
        except Exception:  # unknown or odd codecs are simply not candidates
            continue
    return usable


def decode_header_value(
    value: str, defects: list[str] | None = None, charsets: Sequence[str] = ()
) -> str:
    """RFC 2047 encoded-words and raw 8-bit bytes to text; lying charsets are tolerated.

    `charsets` are the body parts' charsets, the best guess for undeclared 8-bit bytes.
    """
    value = undo_surrogates(str(value), charsets, defects)[:MAX_HEADER_DECODE]
    # Unfold first (RFC 5322 2.2.3: drop the line break, keep the space): decode_header
    # strips each line's plain text, so "=?..?=<CRLF> x" lost the space before the x.
    value = _FOLD.sub("", value)
    try:
        chunks = decode_header(value)
    except Exception as err:
        _note(defects, f"HeaderDecode: {type(err).__name__}")
        return _unfold(value)
    parts = [
        chunk if isinstance(chunk, str) else decode_bytes(chunk, charset, defects)
        for chunk, charset in chunks
    ]
    return _unfold("".join(parts))


def _unfold(value: str) -> str:
    return _FOLD.sub("", value).replace("\r", "").replace("\n", " ").replace("\x00", "").strip()


def clean_header_text(value: str) -> str:
    """Make text safe to reuse in an outgoing header: no controls, no line separators.

    An encoded word that could not be decoded is left as text but broken apart:
    the stdlib would otherwise decode it again when the header is set and then
    fail to fold the result (`=?KS:C:5601:1987?B?...?=`).
    """
    text = _BAD_HEADER_CHARS.sub(" ", value)
    return (
        _LEFTOVER_WORD.sub(" ", text).strip()
        if "?" in text
        else text.strip()
    )


def sanitise_html(html: str) -> str:
    return _HTML_CLEANER.clean(html)


def html_to_text(html: str, defects: list[str]) -> str:
    try:
        return get_text(html[:MAX_HTML_FOR_TEXT])
    except Exception as err:
        defects.append(f"HtmlToText: {type(err).__name__}")
        return re.sub(r"<[^>]+>", " ", html)


def normalise_text(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n").replace("\x00", "")
