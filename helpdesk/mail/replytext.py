"""What an agent actually wrote: the reply without quoted history or signature. Pure.

mail-parser-reply recognises the "On ... wrote:" / "Am ... schrieb" / "Le ... a
écrit" / "El ... escribió" lines and Outlook's From:/Sent: blocks, but only for
the languages it is given (its default is English alone), so they are passed
explicitly. Its default signature rule also eats any line that starts with
"- word", so hyphen lists are kept (`keep_hyphen_lists`).
"""

from __future__ import annotations

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


def latest_reply(text: str) -> str:
    """The newest part of a reply: quoted history and signature removed.

    Top-posted replies (the usual case) keep what is above the quote. Replies written
    below or between quoted lines (Thunderbird's default, mailing-list style) keep
    every line that is not quoted, so the answers are not lost with the quote.
    A text longer than _SCAN_MAX is judged by its head: when nothing there is
    quote, signature or separator, the whole text is the reply.
    """
    if len(text) <= _SCAN_MAX:
        return _latest_reply(text)
    head = text[:_SCAN_MAX]
    reply = _latest_reply(head)
    return reply if reply.split() != head.split() else text.strip()


def _latest_reply(text: str) -> str:
    if not text.strip():
        return ""
    lines = text.splitlines()
    if _answers_after_quote(lines):
        return _unquoted(lines).strip()
    message = EmailMessage(text=text, languages=list(LANGUAGES), keep_hyphen_lists=True).read()
    body = _with_sign_off(message.replies[0]) if message.replies else text
    return _cut_leftovers(body).strip()


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
