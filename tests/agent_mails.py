"""Real-looking replies from agents' mail clients: Gmail, Outlook, Apple Mail and
Thunderbird, with their quote styles and attribution lines in several languages.

Each builder takes what the agent typed on top and the mail being answered, and
returns raw bytes shaped like that client's output (multipart/alternative with
the quoted history in both parts, the client's own headers and Message-ID form).
"""

from __future__ import annotations

import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

_WHEN = datetime(2025, 2, 3, 10, 0, tzinfo=UTC)

GMAIL_ATTRIBUTION = {
    "en": "On Mon, 3 Feb 2025 at 10:00, {name} <{addr}> wrote:",
    "de": "Am Mo., 3. Feb. 2025 um 10:00 Uhr schrieb {name} <{addr}>:",
    "fr": "Le lun. 3 févr. 2025 à 10:00, {name} <{addr}> a écrit :",
    "es": "El lun, 3 feb 2025 a las 10:00, {name} (<{addr}>) escribió:",
}
OUTLOOK_HEADERS = {
    "en": ("From", "Sent", "To", "Subject", "Monday, February 3, 2025 10:00 AM"),
    "de": ("Von", "Gesendet", "An", "Betreff", "Montag, 3. Februar 2025 10:00"),
    "fr": ("De", "Envoyé", "À", "Objet", "lundi 3 février 2025 10:00"),
    "es": ("De", "Enviado", "Para", "Asunto", "lunes, 3 de febrero de 2025 10:00"),
}


def _quoted(body: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in body.splitlines())


def _base(*, sender: str, to: str, subject: str, in_reply_to: str, references: str,
          msgid_domain: str, mailer: str = "") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject if subject.lower().startswith(("re:", "aw:", "rv:")) \
        else f"Re: {subject}"
    msg["Date"] = format_datetime(_WHEN)
    msg["Message-ID"] = make_msgid(domain=msgid_domain)
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = " ".join(f"<{r}>" for r in [*references.split(), in_reply_to] if r)
    if mailer:
        msg["X-Mailer"] = mailer
    return msg


def gmail(*, typed: str, sender: str, to: str, original: EmailMessage, lang: str = "en",
          attachments: tuple[tuple[str, str, bytes], ...] = ()) -> bytes:
    """Gmail: text + HTML, attribution line, then "> " quotes; Message-ID @mail.gmail.com."""
    name, addr = _who(original)
    attribution = GMAIL_ATTRIBUTION[lang].format(name=name, addr=addr)
    quoted = _quoted(_text(original))
    msg = _base(sender=sender, to=to, subject=str(original["Subject"]),
                in_reply_to=_mid(original), references=str(original["References"] or ""),
                msgid_domain="mail.gmail.com")
    msg.set_content(f"{typed}\n\n{attribution}\n\n{quoted}\n")
    html_typed = "".join(f"<div>{line or '<br>'}</div>" for line in typed.splitlines())
    msg.add_alternative(
        f'<div dir="ltr">{html_typed}</div><br><div class="gmail_quote">'
        f'<div dir="ltr" class="gmail_attr">{attribution}<br></div>'
        f'<blockquote class="gmail_quote">{_text(original)}</blockquote></div>', subtype="html")
    return _finish(msg, attachments)


def outlook(*, typed: str, sender: str, to: str, original: EmailMessage, lang: str = "en",
            attachments: tuple[tuple[str, str, bytes], ...] = ()) -> bytes:
    """Outlook: typed text, the signature, an underscore rule and a From/Sent/To/Subject
    block; no ">" quoting; Thread-Index and Content-Language headers."""
    name, addr = _who(original)
    h_from, h_sent, h_to, h_subject, when = OUTLOOK_HEADERS[lang]
    block = (f"________________________________\n{h_from}: {name} <{addr}>\n{h_sent}: {when}\n"
             f"{h_to}: {original['To']}\n{h_subject}: {original['Subject']}\n\n{_text(original)}")
    msg = _base(sender=sender, to=to, subject=str(original["Subject"]),
                in_reply_to=_mid(original), references=str(original["References"] or ""),
                msgid_domain="EXCHANGE.staff.test", mailer="Microsoft Outlook 16.0")
    msg["Thread-Index"] = "AdmK3Qf9cTn0dL2xR8KkW1oYvYc6bA=="
    msg["Content-Language"] = f"{lang}-{lang.upper()}"
    msg.set_content(f"{typed}\n\n{block}\n")
    return _finish(msg, attachments)


def apple_mail(*, typed: str, sender: str, to: str, original: EmailMessage,
               attachments: tuple[tuple[str, str, bytes], ...] = ()) -> bytes:
    """Apple Mail: quoted-printable text, attribution "On 3 Feb 2025, at 10:00, X wrote:"
    then "> " quotes, and "Sent from my iPhone"."""
    name, addr = _who(original)
    msg = _base(sender=sender, to=to, subject=str(original["Subject"]),
                in_reply_to=_mid(original), references=str(original["References"] or ""),
                msgid_domain="staff.test", mailer="Apple Mail (2.3774.300.61.1.2)")
    msg.set_content(f"{typed}\n\nSent from my iPhone\n\n> On 3 Feb 2025, at 10:00, {name} "
                    f"<{addr}> wrote:\n> \n{_quoted(_text(original))}\n", cte="quoted-printable")
    return _finish(msg, attachments)


def thunderbird(*, typed: str, sender: str, to: str, original: EmailMessage,
                attachments: tuple[tuple[str, str, bytes], ...] = ()) -> bytes:
    """Thunderbird: attribution "On 03.02.25 10:00, X wrote:", "> " quotes, and an
    "-- " signature."""
    name, _ = _who(original)
    msg = _base(sender=sender, to=to, subject=str(original["Subject"]),
                in_reply_to=_mid(original), references=str(original["References"] or ""),
                msgid_domain="staff.test")
    msg["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Thunderbird/128.6.0"
    msg.set_content(f"{typed}\n\n-- \nTeam Lead, Example Support\n+49 30 1234567\n\n"
                    f"On 03.02.25 10:00, {name} wrote:\n{_quoted(_text(original))}\n")
    return _finish(msg, attachments)


def _finish(msg: EmailMessage, attachments: tuple[tuple[str, str, bytes], ...]) -> bytes:
    for filename, ctype, data in attachments:
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=email.policy.SMTP)


def _who(original: EmailMessage) -> tuple[str, str]:
    address = original["From"].addresses[0]
    return address.display_name or address.username, address.addr_spec


def _mid(original: EmailMessage) -> str:
    return str(original["Message-ID"]).strip().strip("<>")


def _text(original: EmailMessage) -> str:
    part = original.get_body(preferencelist=("plain",))
    return part.get_content().strip() if part is not None else ""
