"""A realistic mail corpus for the benchmarks, generated (reproducibly, from a seed).

What a helpdesk's inbox looks like, roughly: most mails are a few KiB of plain text, some
are long threads quoted back, one in ten carries a PDF of about 200 KiB, some clients send
HTML only, some still send ISO-8859-1, windows-1252, KOI8-R or Shift_JIS, and a third of
the mail answers a ticket that already exists. The mean size comes out near 30 KiB, like
the corpus django-helpdesk's `get_email` was measured on in issue #18.

`originals(n)` are new requests; `replies(originals, n)` answer them (In-Reply-To and
References naming the original, from the same customer), so they thread onto the
tickets the originals opened.
"""

from __future__ import annotations

import email.policy
import random
from dataclasses import dataclass
from email.message import EmailMessage

RCPT = "support@example.test"

_WORD_TEXT = ("printer invoice password login account order delivery refund broken screen "
              "network slow error message update install licence renewal contract urgent "
              "please thanks hello since yesterday again still cannot works after the and "
              "with for our your this that when which")
WORDS = tuple(_WORD_TEXT.split(" "))
# (charset, a line only that charset can carry: the text must survive the round trip)
CHARSETS = (("iso-8859-1", "Grüße aus Köln, Ça va? Señor"),
            ("windows-1252", "Price: 20 € – “quoted” text…"),
            ("koi8-r", "Здравствуйте, принтер не работает"),
            ("shift_jis", "プリンターが動きません。よろしくお願いします"))


@dataclass(frozen=True)
class Mail:
    sender: str
    message_id: str
    raw: bytes


def _text(rng: random.Random, size: int) -> str:
    words = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    lines = [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    return "Hello,\n\n" + "\n".join(lines) + "\n\nRegards\n"


def _body_size(rng: random.Random) -> int:
    # most short, a long tail of quoted threads
    return int(min(rng.lognormvariate(8.0, 1.2), 200_000))


def _pdf(rng: random.Random, size: int) -> bytes:
    return b"%PDF-1.4\n" + rng.randbytes(size) + b"\n%%EOF\n"


def _message(rng: random.Random, i: int, tag: str, subject: str) -> tuple[str, EmailMessage]:
    sender = f"customer{i}-{tag}@customer.test"
    msg = EmailMessage()
    msg["From"] = f"Customer {i} <{sender}>"
    msg["To"] = RCPT
    msg["Subject"] = subject
    msg["Message-ID"] = f"<corpus-{tag}-{i}@customer.test>"
    text = _text(rng, _body_size(rng))
    kind = rng.random()
    if kind < 0.15:  # HTML only, as some webmail and phone clients send
        paragraphs = "".join(f"<p>{line}</p>" for line in text.splitlines() if line)
        msg.set_content(f"<html><body>{paragraphs}</body></html>", subtype="html")
    elif kind < 0.30:  # a legacy charset
        charset, line = rng.choice(CHARSETS)
        msg.set_content(line + "\n" + text, charset=charset)
    else:
        msg.set_content(text)
        if rng.random() < 0.3:
            paragraphs = "".join(f"<p>{line}</p>" for line in text.splitlines() if line)
            msg.add_alternative(f"<html><body>{paragraphs}</body></html>", subtype="html")
    if rng.random() < 0.1:
        msg.add_attachment(_pdf(rng, rng.randint(150_000, 250_000)), maintype="application",
                           subtype="pdf", filename=f"scan-{i}.pdf")
    return sender, msg


def originals(n: int, tag: str, seed: int = 18) -> list[Mail]:
    rng = random.Random(f"{seed}-{tag}")
    mails = []
    for i in range(n):
        sender, msg = _message(rng, i, tag, f"Request {i} ({tag}): {rng.choice(WORDS)} "
                                            f"{rng.choice(WORDS)} problem")
        mails.append(Mail(sender, str(msg["Message-ID"]),
                          msg.as_bytes(policy=email.policy.SMTP)))
    return mails


def replies(to: list[Mail], n: int, tag: str, seed: int = 18) -> list[Mail]:
    """`n` follow-ups from the customers of `to` (round robin), threaded onto them."""
    rng = random.Random(f"{seed}-{tag}-replies")
    mails = []
    for j in range(n):
        original = to[j % len(to)]
        _, msg = _message(rng, j, f"{tag}-reply", "Re: my request")
        del msg["From"]
        msg["From"] = original.sender
        msg["In-Reply-To"] = original.message_id
        msg["References"] = original.message_id
        mails.append(Mail(original.sender, str(msg["Message-ID"]),
                          msg.as_bytes(policy=email.policy.SMTP)))
    return mails


def burst(n: int, tag: str, existing: list[Mail]) -> list[Mail]:
    """`n` mails, a third of them replies to `existing`, mixed in."""
    n_replies = n // 3 if existing else 0
    mails = originals(n - n_replies, tag) + replies(existing, n_replies, tag)
    random.Random(tag).shuffle(mails)
    return mails
