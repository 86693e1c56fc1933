"""Reading and checking what the public form posted (form.py): the multipart body,
bounded; each text field decoded as UTF-8 or reported; every problem a sentence for
the visitor, shown on the form with what they typed kept.

The body is read up to twice the form's own limit ([web_form] max_size plus room for
the text): a body over [web_form] max_size but under that is still read, so the
visitor hears "the attachments are too large" with their text kept; only a larger one
gets a bare 413 page.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from helpdesk.config.settings import Settings
from helpdesk.web import form_input
from helpdesk.web.csrf import BodyTooLarge
from helpdesk.web.portal import mailing
from helpdesk.web.portal.form_mail import Request as Asked
from helpdesk.web.portal.form_mail import Upload

TEXT_ROOM = 256 * 1024  # the text fields and the multipart framing beside the files
MAX_FILES = 10
MAX_NAME = 200
MAX_SUBJECT = 250
KEPT = ("name", "address", "subject", "text", "category", "priority")
HONEYPOT = "website"  # hidden from people (CSS, aria-hidden, no tab stop); bots fill it
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"[\r\n]")
# markup that would run in a browser: refused rather than silently stored, so an
# agent never has to wonder what a request "really" said
_SCRIPT = re.compile(r"<\s*/?\s*(?:script|iframe|object|embed|svg|style)\b|javascript\s*:"
                     r"|<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
LABELS = {"name": "name", "address": "e-mail address", "subject": "subject",
          "text": "description", "category": "category", "priority": "priority"}

__all__ = ["BodyTooLarge", "MultiPartException", "Posted", "check", "read"]


@dataclass
class Posted:
    fields: dict[str, str] = field(default_factory=dict)
    uploads: list[Upload] = field(default_factory=list)
    not_utf8: list[str] = field(default_factory=list)  # the fields that were not UTF-8

    def kept(self) -> dict[str, str]:
        return {name: self.fields.get(name, "") for name in KEPT}

    @property
    def upload_bytes(self) -> int:
        return sum(len(u.data) for u in self.uploads)


class _Strict(MultiPartParser):
    """Starlette's parser, noting each text field that is not UTF-8 (it would quietly
    read it as Latin-1)."""

    bad: list[str]

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None:
            try:
                bytes(part.data).decode("utf-8")
            except UnicodeDecodeError:
                self.bad.append(part.field_name)
        super().on_part_end()


def body_cap(settings: Settings) -> int:
    return 2 * (settings.web_form.max_size + TEXT_ROOM)


async def _body(request: Request, cap: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared and (not declared.isdigit() or int(declared) > cap):
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise BodyTooLarge
    return bytes(body)


async def read(request: Request, settings: Settings) -> Posted:
    """The posted form. BodyTooLarge past body_cap; MultiPartException when it is no
    multipart form at all."""
    body = await _body(request, body_cap(settings))
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise MultiPartException("not a multipart form")

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    parser = _Strict(request.headers, stream(), max_files=MAX_FILES + 1, max_fields=30,
                     max_part_size=TEXT_ROOM)
    parser.bad = []
    form = await parser.parse()
    posted = Posted(not_utf8=parser.bad)
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name == "attachments":
                await _upload(posted, value)
        elif name not in posted.fields:
            posted.fields[name] = value.replace("\r\n", "\n")
    await form.close()
    return posted


async def _upload(posted: Posted, item: UploadFile) -> None:
    got = await form_input.read_file(item)
    if got is not None:
        posted.uploads.append(Upload(got.filename, got.content_type, got.data))


def check(settings: Settings, posted: Posted, is_agent: bool) -> tuple[Asked | None, list[str]]:
    """The request, or None and every problem, each a sentence for the visitor.
    `is_agent`: the address is one of our agents' (their mail is how commands come)."""
    wf = settings.web_form
    got = {name: posted.fields.get(name, "").strip() for name in KEPT}
    errors = [f"Your browser sent the {LABELS.get(n, n)} in a character set we cannot "
              "read: please type it again (the page expects UTF-8)."
              for n in posted.not_utf8 if n in LABELS]
    for name in ("name", "address", "subject", "text"):
        if not got[name]:
            errors.append(f"Please fill in your {LABELS[name]}.")
    errors += [f"Please remove the script or HTML from the {LABELS[n]}: describe it in "
               "words, or attach it as a file." for n in KEPT if _SCRIPT.search(got[n])]
    address = mailing.clean_address(got["address"])
    if got["address"] and not address:
        errors.append("That does not look like an e-mail address (name@example.org).")
    elif address and (settings.is_own_address(address) or is_agent):
        errors.append("That address is our own team's: please use your own.")
    for name, limit in (("name", MAX_NAME), ("subject", MAX_SUBJECT), ("text", wf.max_text)):
        if len(got[name]) > limit:
            errors.append(f"Please keep the {LABELS[name]} under {limit:,} characters.")
    for name in ("name", "subject"):
        if _LINE_BREAKS.search(got[name]) or _CONTROLS.search(got[name]):
            errors.append(f"Please write the {LABELS[name]} on one line.")
    if got["category"] and got["category"] not in wf.categories:
        errors.append("Please pick a category from the list.")
    if got["priority"] and got["priority"] not in wf.priority_labels:
        errors.append("Please pick a priority from the list.")
    errors += _upload_errors(settings, posted)
    if errors:
        return None, errors
    return Asked(got["name"], address, got["subject"], _CONTROLS.sub("", got["text"]),
                 got["category"], got["priority"], tuple(posted.uploads)), []


def _upload_errors(settings: Settings, posted: Posted) -> list[str]:
    errors = []
    if len(posted.uploads) > MAX_FILES:
        errors.append(f"Please attach at most {MAX_FILES} files.")
    cap = settings.web_form.max_size
    if posted.upload_bytes > cap:
        errors.append(f"The attachments are too large together: at most {size_text(cap)} "
                      f"(these were {size_text(posted.upload_bytes)}). Please attach "
                      "smaller files.")
    return errors


def size_text(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB"
    return f"{max(1, n // 1024)} KiB"
