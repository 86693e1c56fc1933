"""Random short texts for comparing reply cutters: made of pieces of lines just inside
or just outside what mail-parser-reply and replytext look for (salutations, "Sent from
my", header fields, attributions, quote marks, rules) and of odd line breaks, so that
many of them try the edges of replytext's shortcuts. Used by tests and by
bench/parse_same.py.
"""

from __future__ import annotations

import random

# pieces of lines just inside or outside what the cutters look for
_PIECES = (
    "Thanks,", "thanks", "Best regards", "regards,", "Grüße", "Gruss", "Saludos,", "Bedankt,",
    "Sent from my", "sent from", "Gesendet von", "ſent from my", "Envoyé depuis", "mail",
    "MAIL", "maıl", "e-mail", "Warning:", "Disclaimer", "CAUTION:", "Hinweis:", "From:",
    "From", "Sent:", "To:", "De :", "Envoyé :", "À :", "A:", "  :", ":", "::", "wrote:",
    "wrote", "On Monday Ann wrote:", "Am Montag schrieb Ann:", "a écrit :", "escribió:",
    "ha scritto:", "schreef:", ">", "> ", "*", "-", "_", "- x", "-x", "--", "__", "-_",
    "Original Message", "x", "word", "Ann", "İ", "K", "10:30", "http://x.y/z", "a:b",
    "Thanks", "Regards", "Viele", "Liebe Grüße", "Mit freundlichen Grüßen", "cordialement",
    "Get Outlook for", "Inviato da", "Verzonden vanaf mijn", "Enviado desde mi",
    "Kind Regards", "All the best", "Best,", "Thank you,", "Gracias,", "Un saludo,",
    "Atentamente,", "bonne journée", "Hartelijke groeten", "Dank u,", "Cordiali saluti",
    "Organization:", "Organización:", "Betreff:", "Objet :", "Para:", "Oggetto:",
    "Onderwerp:", "Data:", "Aan:",
)
_SEPARATORS = ("", " ", "  ", "\n", "\n", "\n\n", "\r\n", "\t", "\r", "\x0c", "\u2028",
               "\x85", "\xa0", "\u200b", " \n ")


def synthetic(rng: random.Random) -> str:
    """A short random text built from `_PIECES` (one in six or so takes replytext's
    shortcut past the library, the others skip some of its regexes)."""
    out = []
    for _ in range(rng.randint(1, 10)):
        out += [rng.choice(_PIECES), rng.choice(_SEPARATORS)]
    return "".join(out)
