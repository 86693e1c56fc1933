"""Does the parser (and the reply cutter) still give what an earlier revision gave?

    python bench/parse_same.py [--against main] [--corpus DIR] [--realistic N] [--fuzz N]

Speed work on helpdesk/mail must not change a single field: this parses every message
file of the corpus (HELPDESK_CORPUS, else tests/corpus/; the full developer corpus has
600 files), the generated realistic corpus (bench/mailcorpus.py) and the test fixtures
with the revision's helpdesk/mail (taken from git into a temporary package) and with the
working tree's, and requires equal ParsedMails (every field, attachment bytes too) or
equal ParseError messages. Then `replytext.latest_reply` must give the same text for
every body (every text/plain part, every body_text, the header-less reply bodies, and
seeded variants with quote, attribution, signature and salutation lines mixed in), and
`content_hash` the same key for seeded whitespace-mangled copies of every mail.

Mail is only parsed here: attachments are never written out or opened.
Exit status 1 and the first differences printed when anything differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import email
import email.policy
import importlib
import io
import logging
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from mailcorpus import burst, originals  # noqa: E402

from helpdesk.errors import ParseError  # noqa: E402
from helpdesk.mail import parse as new_parse  # noqa: E402
from helpdesk.mail import replytext as new_reply  # noqa: E402
from tests.corpus import corpus_root  # noqa: E402
from tests.reply_texts import synthetic  # noqa: E402

_SUFFIXES = (".eml", ".msg", ".body.txt", ".txt")
# lines that make the reply cutter (ours or mail-parser-reply's) cut or keep something
_TRICKY_LINES = (
    "> quoted line", ">", "> > deeper", "On Mon, 1 Jan 2024 at 10:00, Ann <a@b.c> wrote:",
    "On Mon, 1 Jan 2024, Ann wrote:", "Am 01.01.2024 um 10:00 schrieb Ann:",
    "Le lun. 1 janv. 2024 à 10:00, Ann a écrit :", "El lun, 1 ene 2024, Ann escribió:",
    "Il giorno lun 1 gen 2024, Ann ha scritto:", "Op ma 1 jan 2024 schreef Ann:",
    "--", "-- ", "__", "- a list item", "-Ann", "_" * 32, "-" * 40, "_" * 12,
    "-----Original Message-----", "----- Ursprüngliche Nachricht -----",
    "From: Ann <a@b.c>", "Sent: Monday", "To: Bob", "Subject: Re: x", "Date: today",
    "*From:* Ann", "*Sent:* Monday", "Von: Ann", "Gesendet: Montag", "De : Ann", "Envoyé : lundi",
    "Best regards", "Best regards,", "Kind Regards", "Thanks,", "Thank you,", "Best,",
    "regards,", "REGARDS,", "Regards", "Mit freundlichen Grüßen", "Viele Grüße", "Cordialement",
    "Saludos", "Cordiali saluti", "Met vriendelijke groet", "Ann", "Ann Smith", "",
    "  ", "\t", "Sent from my iPhone", "Get Outlook for iOS", "Gesendet von meinem iPhone",
    "CAUTION: this e-mail came from outside", "Disclaimer: this mail is confidential",
    "Warning: external mail", "Confidential: this email", "İ", "MAİL", "ſent from my phone",
    "Kelvin \u212a", "\u00a0", "\u200b", "\u2028", "\x0c", "  indented > not a quote",
    "a line with wrote: inside", "wrote:", "On", "mail", "e-mail", "FROM: x", "sent: y",
)


def load_old(rev: str, into: Path) -> tuple[ModuleType, ModuleType]:
    """helpdesk/mail at `rev` as the package `oldmail` (its parse and replytext)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "helpdesk/mail"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    package = into / "oldmail"
    (into / "helpdesk" / "mail").rename(package)
    for path in package.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("helpdesk.mail.", "oldmail.")
                        .replace("from helpdesk.mail import", "from oldmail import"),
                        encoding="utf-8")
    sys.path.insert(0, str(into))
    return importlib.import_module("oldmail.parse"), importlib.import_module("oldmail.replytext")


def message_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name.endswith(_SUFFIXES):
            yield path


def outcome(fn: Callable[[bytes], object], raw: bytes) -> object:
    """Every field as plain values (two revisions' classes never compare equal)."""
    try:
        return dataclasses.astuple(fn(raw))  # type: ignore[call-overload]
    except ParseError as err:
        return f"ParseError: {err}"


def plain_parts(raw: bytes) -> Iterator[str]:
    """The decoded text/plain leaves, read with the stdlib (bodies only, never files)."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        for part in msg.walk():
            if part.get_content_type() == "text/plain":
                data = part.get_payload(decode=True)
                if isinstance(data, bytes):
                    yield data.decode(part.get_content_charset() or "utf-8", "replace")
    except Exception:  # hostile mail the stdlib cannot walk: parse() covers it
        return


def variants(text: str, rng: random.Random, count: int) -> Iterator[str]:
    """`text` with tricky lines put in at random places, cut short, or CRLF-ended."""
    lines = text.splitlines()
    for _ in range(count):
        mixed = list(lines)
        for _ in range(rng.randint(1, 4)):
            mixed.insert(rng.randint(0, len(mixed)), rng.choice(_TRICKY_LINES))
        if rng.random() < 0.3:
            mixed = mixed[: rng.randint(0, len(mixed))]
        yield ("\r\n" if rng.random() < 0.2 else "\n").join(mixed)


def mangled(raw: bytes, rng: random.Random) -> bytes:
    """Whitespace and line-end damage that the content hash must see the same as before."""
    out = bytearray(raw)
    for _ in range(rng.randint(1, 8)):
        at = rng.randint(0, len(out))
        out[at:at] = rng.choice((b"\r", b"\n", b"\r\n", b" ", b"\t", b"\x0b", b"\x0c",
                                 b"\n\n", b" \r\n", b"\r\r\n", b"\n \n", b"\x00"))
    if rng.random() < 0.3:
        out = out.replace(b"\n", b"\r\n")
    return bytes(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", default="main", help="git revision to compare with")
    parser.add_argument("--corpus", type=Path, default=corpus_root())
    parser.add_argument("--realistic", type=int, default=600,
                        help="generated mails (bench/mailcorpus.py) to compare too")
    parser.add_argument("--fuzz", type=int, default=3,
                        help="seeded variants of each text and each mail")
    parser.add_argument("--synthetic", type=int, default=20000,
                        help="random short texts for latest_reply")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # mail-parser's complaints about hostile mail
    rng = random.Random(18)
    with tempfile.TemporaryDirectory() as tmp:
        old_parse, old_reply = load_old(args.against, Path(tmp))
        mails: list[tuple[str, bytes]] = [
            (str(p.relative_to(args.corpus)), p.read_bytes()) for p in message_files(args.corpus)]
        tests = REPO / "tests"
        mails += [(f"tests/{p.relative_to(tests)}", p.read_bytes())
                  for p in message_files(tests) if tests / "corpus" not in p.parents]
        if args.realistic:
            made = originals(args.realistic // 2, "same")
            mails += [(f"realistic/{i}", m.raw)
                      for i, m in enumerate(made + burst(args.realistic // 2, "same2", made))]
        failures: list[str] = []
        texts: list[tuple[str, str]] = []
        timing = {"old": 0.0, "new": 0.0}
        for name, raw in mails:
            t0 = time.thread_time()
            old = outcome(old_parse.parse, raw)
            t1 = time.thread_time()
            new = outcome(new_parse.parse, raw)
            timing["old"] += t1 - t0
            timing["new"] += time.thread_time() - t1
            if old != new:
                failures.append(f"parse {name}: {old!r:.300} != {new!r:.300}")
            for i in range(args.fuzz):
                bent = mangled(raw, rng)
                if old_parse.content_hash(bent) != new_parse.content_hash(bent):
                    failures.append(f"content_hash {name} variant {i}")
            if isinstance(new, tuple):
                texts.append((f"{name} body_text", new_parse.parse(raw).body_text))
            if name.endswith(".txt"):
                texts.append((name, raw.decode("utf-8", "replace")))
            texts += [(f"{name} text/plain part", t) for t in plain_parts(raw)]
        print(f"parse: {len(mails)} mails, {args.fuzz} hash variants each; CPU s "
              f"old {timing['old']:.2f} new {timing['new']:.2f}")
        timing = {"old": 0.0, "new": 0.0}
        count = 0
        texts += [(f"synthetic {i}", synthetic(rng)) for i in range(args.synthetic)]
        for name, text in texts:
            for i, variant in enumerate([text, *variants(text, rng, args.fuzz)]):
                count += 1
                t0 = time.thread_time()
                old_text = old_reply.latest_reply(variant)
                t1 = time.thread_time()
                new_text = new_reply.latest_reply(variant)
                timing["old"] += t1 - t0
                timing["new"] += time.thread_time() - t1
                if old_text != new_text:
                    failures.append(f"latest_reply {name} variant {i}: "
                                    f"{old_text!r:.200} != {new_text!r:.200}")
        print(f"latest_reply: {count} texts; CPU s old {timing['old']:.2f} "
              f"new {timing['new']:.2f}")
    for line in failures[:20]:
        print(line)
    print(f"{len(failures)} differences" if failures else "identical")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
