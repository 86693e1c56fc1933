"""What an agent actually wrote: the reply without quoted history or signature. Pure.

mail-parser-reply recognises the "On ... wrote:" / "Am ... schrieb" / "Le ... a
écrit" / "El ... escribió" lines and Outlook's From:/Sent: blocks, but only for
the languages it is given (its default is English alone), so they are passed
explicitly. Its default signature rule also eats any line that starts with
"- word", so hyphen lists are kept (`keep_hyphen_lists`).
"""

from __future__ import annotations

import functools
import re

from mailparser_reply.constants import MAIL_LANGUAGES
from mailparser_reply.parser import EmailMessage, EmailReply

LANGUAGES = ("en", "de", "fr", "es", "it", "nl")
# Apple Mail and Thunderbird quote with ">" after the attribution; some clients send
# ">" lines with no attribution at all: everything from the first quoted block on goes
_QUOTED = re.compile(r"^\s*>")
# Outlook/Apple "forward" and "original message" separators missed by the library
_SEPARATORS = re.compile(
    r"^\s*(?:-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|"
    r"Mensaje original|Messaggio originale)\s*-{2,}|_{20,})\s*$",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"^--\s?$")
# The library takes a closing salutation ("Best regards", "Mit freundlichen Grüßen")
# for the start of the signature and cuts it with the name below it; that is the
# agent signing off to the customer, so it is put back (see _sign_off). Its own
# per-language lists say what a salutation is.
_SALUTATION = re.compile(
    "|".join(f"(?:{p})" for lang in LANGUAGES
             for p in MAIL_LANGUAGES.get(lang, {}).get("signatures", [])),
    re.IGNORECASE,
)
# what ends a sign-off: a signature delimiter, a rule, a client's "Sent from my ..."
_NOT_A_NAME = re.compile(
    r"^\s*(?:--|__|sent from|get outlook|gesendet von|envoyé de|enviado desde|inviato da)",
    re.IGNORECASE,
)
_NAME_MAX = 80
# attribution lines the library misses (its Spanish pattern wants two spaces before
# "escribió"; long Gmail attributions wrap onto a second line)
_ATTRIBUTION = re.compile(
    r"^\s*(?:On|Am|Le|El|Il|Op)\s.+(?:wrote|schrieb|a écrit|escribió|ha scritto|schreef)\s*:\s*$",
    re.IGNORECASE,
)


# a bare rule of dashes or underscores opens Outlook's quoted original when a header
# line (From:, *From:*, Von:, De:) follows it
_RULE = re.compile(r"^\s*(?:-{10,}|_{10,})\s*$")
_HEADER_LINE = re.compile(r"^\s*\*?(?:From|Von|De|Da|Van)\s*:", re.IGNORECASE)
_SENT_LINE = re.compile(r"^\s*\*?(?:Sent|Date|Gesendet|Datum|Envoyé|Enviado|Inviato)\s*:",
                        re.IGNORECASE)


# The reply parser's regexes take about a second per megabyte: it reads the head of
# a longer text only (an answer and the quote below it start near the top)
_SCAN_MAX = 256 * 1024

# What splitlines() ends a line at: all of them whitespace to str.strip() and to \s.
_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
# a line ending in a colon (an attribution), whichever line break ends it
_COLON_AT_END = re.compile(rf":\s*(?:[{_BREAKS}]|\Z)")
_NEVER = re.compile(r"(?!)")


def _line_start(pattern: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """`pattern` at the start of the text, and after a line feed: a search for a literal
    first character skips ahead fast, one for "^" under MULTILINE tries every position."""
    flags = re.IGNORECASE
    return re.compile(pattern, flags), re.compile(rf"\n{pattern}", flags)


def _at_line_start(text: str, patterns: tuple[re.Pattern[str], re.Pattern[str]]) -> bool:
    return bool(patterns[0].match(text) or patterns[1].search(text))


class _Scan:
    """What a text has that makes any cutting possible, found with fast scans."""

    def __init__(self, text: str) -> None:
        # "--", "__": signature delimiters, rules, separators
        self.rule = "--" in text or "__" in text or "-_" in text or "_-" in text
        self.colon = ":" in text
        self.colon_at_end = self.colon and bool(_COLON_AT_END.search(text))
        # without these, _answers_after_quote and _cut_leftovers find nothing to cut
        self.quoting = self.rule or self.colon_at_end or ">" in text


class _Library:
    """mail-parser-reply's three regexes for our languages, built once.

    EmailMessage builds them from its language tables on every instance (joining some
    30 KB of pattern text, then a lookup in re's cache); prebuilt ones can be handed
    to it, and are taken from an instance of its own, so they are exactly its patterns.
    """

    def __init__(self) -> None:
        made = EmailMessage(text="", languages=list(LANGUAGES), keep_hyphen_lists=True)
        self.languages = made.languages
        self.header = made.HEADER_REGEX
        self.disclaimers = made.DISCLAIMERS_REGEX
        self.signature = made.SIGNATURE_REGEX


_LIBRARY = _Library()


def _language_list(key: str) -> list[str]:
    """The library's per-language regex strings under `key`, for our languages."""
    found: list[str] = []
    for language in _LIBRARY.languages:
        value = MAIL_LANGUAGES.get(language, {}).get(key, [])
        found += value if isinstance(value, list) else [value]
    return [v for v in found if v]


def _unescape(pattern: str) -> str:
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), pattern)


class _Hints:
    """Cheap tests that nothing in a text can match one of the library's regexes.

    Each is a necessary condition read off the library's patterns: a header is an
    attribution line ending in a colon, an Outlook block of lines that start with one
    word and a colon, or a separator of dashes; a disclaimer is always followed by
    "mail"; a signature is "--"/"__" or a line that starts with a client's "Sent from
    my" or a salutation of its lists. They are looked for in the text as given: the
    library strips every line, so its line starts are whitespace and a line start
    here. IGNORECASE as the library's, so letters match alike (even "ſ" and "s").
    Where the library's patterns are not built as assumed (another version), the test
    says "may match" and the library's regex runs.
    """

    def __init__(self, library: _Library) -> None:
        self._block = re.compile(r"[\s>*]*\w*\s?:") \
            if self._headers_as_assumed(library) else None
        self._mail = re.compile("mail", re.IGNORECASE) \
            if "?(?:mail)" in library.disclaimers.pattern \
            and library.disclaimers.pattern.endswith("){1,2}") else None
        sent = "|".join(_language_list("sent_from"))
        salutations = "|".join(_language_list("signatures"))
        assumed = self._signatures_as_assumed(library, sent, salutations)
        self._sent = _line_start(rf"[\s>]*(?:{sent})") if assumed else None
        # "(?<!\A)": never on the text's first line, nor at the start of a part cut at
        # a header (those start with the header)
        self._salutation = re.compile(rf"\n[\s>]*(?:{salutations})", re.IGNORECASE)

    @staticmethod
    def _headers_as_assumed(library: _Library) -> bool:
        """Its header regex is the languages' wrote_header and from_header patterns and
        the "-----Original Message-----" separator, "|"-joined in groups; each wrote
        pattern ends in ":" at a line end, each from pattern wants a line starting with
        one of its keywords (a word, an optional space) and a colon."""
        from mailparser_reply.constants import GENERIC_MAIL_SEPARATOR
        wrote, froms = _language_list("wrote_header"), _language_list("from_header")
        start = r"((?:(?:^|\n|\n(?:> ?)*)[* ]*(?:"
        for pattern in froms:
            keywords = pattern[len(start):].partition("):")[0]
            if not pattern.startswith(start) or not all(
                    re.fullmatch(r"\s*\w*\s?", _unescape(k)) for k in keywords.split("|")):
                return False
        if not all(p.endswith(":)$") for p in wrote) or \
                not GENERIC_MAIL_SEPARATOR.startswith("^-{5,}"):
            return False
        rest = library.header.pattern
        for piece in (*wrote, *froms, GENERIC_MAIL_SEPARATOR):
            rest = rest.replace(piece, "", 1)
        return set(rest) <= set("|()")

    @staticmethod
    def _signatures_as_assumed(library: _Library, sent: str, salutations: str) -> bool:
        """Its signature regex alternates "--"/"__" rules, the Outlook rule of 32 dashes
        or underscores, a line starting with a "Sent from" phrase, and one starting
        with a salutation (each after optional ">" quote marks)."""
        from mailparser_reply.constants import NOLIST_SIGNATURE_REGEX, OUTLOOK_MAIL_SEPARATOR
        pattern = library.signature.pattern
        return (
            pattern.startswith(f"(({NOLIST_SIGNATURE_REGEX}|{OUTLOOK_MAIL_SEPARATOR}|")
            and NOLIST_SIGNATURE_REGEX.endswith(r"(?:[-_]{2}\n).*")
            and OUTLOOK_MAIL_SEPARATOR.endswith(r"[_-]{32,})")
            and rf"\s*^(?:> ?)*(?:{sent}) ?" in pattern
            and pattern.endswith(rf"|(?<!\A)^(?:> ?)*(?:{salutations}))(.|\s)*)")
        )

    def header(self, text: str, scan: _Scan) -> bool:
        if self._block is None:
            return True
        return scan.rule or scan.colon_at_end or (scan.colon and self._block_lines(text))

    def _block_lines(self, text: str) -> bool:
        """Two lines that start with a word and a colon: an Outlook block has them
        (its pattern repeats {2,}, each from a line start)."""
        assert self._block is not None
        found = 0
        for line in text.split("\n"):
            if self._block.match(line):
                found += 1
                if found == 2:
                    return True
        return False

    def disclaimer(self, text: str) -> bool:
        if self._mail is None:
            return True
        # in ASCII text IGNORECASE matches exactly what lower() folds
        return "mail" in text.lower() if text.isascii() else bool(self._mail.search(text))

    def signature(self, text: str, scan: _Scan) -> bool:
        if self._sent is None:
            return True
        return scan.rule or _at_line_start(text, self._sent) or \
            bool(self._salutation.search(text))


_LIBRARY_HINTS = _Hints(_LIBRARY)


# The same text is cut more than once (the customer portal cuts every message of a
# ticket on every view): small texts are remembered, a few dozen at most
_CACHED_MAX = 16 * 1024


def latest_reply(text: str) -> str:
    """The newest part of a reply: quoted history and signature removed.

    Top-posted replies (the usual case) keep what is above the quote. Replies written
    below or between quoted lines (Thunderbird's default, mailing-list style) keep
    every line that is not quoted, so the answers are not lost with the quote.
    A text longer than _SCAN_MAX is judged by its head: when nothing there is
    quote, signature or separator, the whole text is the reply.
    """
    if len(text) <= _CACHED_MAX:
        return _cached_reply(text)
    if len(text) <= _SCAN_MAX:
        return _latest_reply(text)
    head = text[:_SCAN_MAX]
    reply = _latest_reply(head)
    return reply if reply.split() != head.split() else text.strip()


@functools.lru_cache(maxsize=32)
def _cached_reply(text: str) -> str:
    return _latest_reply(text)


def _latest_reply(text: str, shortcuts: bool = True) -> str:
    """`shortcuts=False`: every rule and every library regex runs (what the shortcuts
    must give the same as; the tests compare the two)."""
    if not text.strip():
        return ""
    scan = _Scan(text) if shortcuts else None
    if scan is None or scan.quoting:
        lines = text.splitlines()
        if _answers_after_quote(lines):
            return _unquoted(lines).strip()
    if scan is None:
        header = disclaimer = signature = True
    else:
        header = _LIBRARY_HINTS.header(text, scan)
        disclaimer = _LIBRARY_HINTS.disclaimer(text)
        signature = _LIBRARY_HINTS.signature(text, scan)
        if not (scan.quoting or header or disclaimer or signature):
            # nothing for the library or _cut_leftovers to cut: what they return, the
            # library's normalised text (each line stripped), split into lines again
            return "\n".join(_normalised(text).strip().splitlines()).strip()
    # the library's own regexes, compiled once; one that cannot match this text is
    # swapped for a pattern that fails at once (each costs ~1 ms per 5 KB of text)
    message = EmailMessage(
        text=text, languages=list(LANGUAGES), keep_hyphen_lists=True,
        _header_regex=_LIBRARY.header if header else _NEVER,
        _disclaimers_regex=_LIBRARY.disclaimers if disclaimer else _NEVER,
        _signature_regex=_LIBRARY.signature if signature else _NEVER,
    ).read()
    body = _with_sign_off(message.replies[0]) if message.replies else text
    return _cut_leftovers(body).strip()


def _normalised(text: str) -> str:
    """The text as EmailMessage reads it when it has no run of "_" or "-" (its only
    other change, which moves an Outlook rule onto a line of its own, needs one)."""
    return "\n".join(line.strip() for line in text.replace("\r\n", "\n").split("\n"))


def _with_sign_off(reply: EmailReply) -> str:
    """The reply's body with its closing salutation and the name line after it, when
    what the library cut as the signature starts with one; the rest stays cut."""
    body = reply.body
    sign_off = _sign_off(reply.signatures or "")
    if not sign_off:
        return body
    before = reply.content[:max(0, reply.content.find(reply.signatures))]
    gap = "\n\n" if "\n\n" in before[len(before.rstrip()):] else "\n"
    return f"{body}{gap}{sign_off}" if body else sign_off


def _sign_off(signature: str) -> str:
    """'Best regards' and the name below it (one blank line between is fine)."""
    lines = signature.splitlines()
    if not lines or not _SALUTATION.match(lines[0]) or len(lines[0]) > _NAME_MAX:
        return ""
    kept = [lines[0]]
    rest = lines[1:3]
    if rest and not rest[0].strip():
        rest = rest[1:2]  # "Best regards,", a blank line, then the name
    name = rest[0] if rest else ""
    if name.strip() and len(name) <= _NAME_MAX and not _NOT_A_NAME.match(name) \
            and not _SALUTATION.match(name):
        kept += lines[1:lines.index(name, 1) + 1]
    return "\n".join(kept)


def _is_quote_start(lines: list[str], i: int) -> bool:
    return bool(_QUOTED.match(lines[i]) or _ATTRIBUTION.match(lines[i]))


def _is_header_block(lines: list[str], i: int) -> bool:
    """Outlook's quoted original: a From: line followed by Sent:/Date:/To: lines."""
    return bool(_HEADER_LINE.match(lines[i])) and any(
        _SENT_LINE.match(n) for n in lines[i + 1:i + 3])


def _answers_after_quote(lines: list[str]) -> bool:
    """Is there unquoted text after the first quoted block (inline or bottom posting)?"""
    first = None
    for i, line in enumerate(lines):
        if _SIGNATURE.match(line) or _SEPARATORS.match(line) or _is_header_block(lines, i):
            return False  # a top-posted reply above an unquoted original
        if _is_quote_start(lines, i):
            first = i
            break
    if first is None:
        return False
    # bottom posting: nothing above the quote; inline: quote, answer, quote again
    top_posted = any(line.strip() for line in lines[:first])
    answered = False
    for line in lines[first:]:
        if _SIGNATURE.match(line) or _SEPARATORS.match(line) or _RULE.match(line):
            break
        quoted = bool(_QUOTED.match(line))
        if answered and quoted:
            return True
        if line.strip() and not quoted and not _ATTRIBUTION.match(line):
            if not top_posted:
                return True
            answered = True
    return False


def _unquoted(lines: list[str]) -> str:
    kept: list[str] = []
    for line in lines:
        if _SIGNATURE.match(line) or _SEPARATORS.match(line):
            break
        if _QUOTED.match(line) or _ATTRIBUTION.match(line):
            continue
        kept.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept))


def _cut_leftovers(body: str) -> str:
    kept: list[str] = []
    lines = body.splitlines()
    for i, line in enumerate(lines):
        if any(p.match(line) for p in (_QUOTED, _SEPARATORS, _SIGNATURE, _ATTRIBUTION)):
            break
        if _RULE.match(line) and any(_HEADER_LINE.match(n) for n in lines[i + 1:i + 4]):
            break
        kept.append(line)
    while kept and (not kept[-1].strip() or _RULE.match(kept[-1])):
        kept.pop()  # the rule above a quoted original the library already cut
    return "\n".join(kept)
