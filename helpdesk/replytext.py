"""What an agent actually wrote: the reply without quoted history or signature. Pure.

mail-parser-reply recognises the "On ... wrote:" / "Am ... schrieb" / "Le ... a
écrit" / "El ... escribió" lines and Outlook's From:/Sent: blocks, but only for
the languages it is given (its default is English alone), so they are passed
explicitly. Its default signature rule also eats any line that starts with
"- word", so hyphen lists are kept (`keep_hyphen_lists`).
"""

from __future__ import annotations

import re

from mailparser_reply.parser import EmailMessage

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
_SIGNATURE = re.compile(r"^-- ?$")
# attribution lines the library misses (its Spanish pattern wants two spaces before
# "escribió"; long Gmail attributions wrap onto a second line)
_ATTRIBUTION = re.compile(
    r"^\s*(?:On|Am|Le|El|Il|Op)\s.+(?:wrote|schrieb|a écrit|escribió|ha scritto|schreef)\s*:\s*$",
    re.IGNORECASE,
)


def latest_reply(text: str) -> str:
    """The newest part of a reply: quoted history and signature removed."""
    if not text.strip():
        return ""
    message = EmailMessage(text=text, languages=list(LANGUAGES), keep_hyphen_lists=True).read()
    body = message.replies[0].body if message.replies else text
    return _cut_leftovers(body).strip()


def _cut_leftovers(body: str) -> str:
    kept: list[str] = []
    for line in body.splitlines():
        if any(p.match(line) for p in (_QUOTED, _SEPARATORS, _SIGNATURE, _ATTRIBUTION)):
            break
        kept.append(line)
    return "\n".join(kept)
