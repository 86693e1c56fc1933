"""Build outgoing mail from templates and queue it in the outbox (same transaction).

Templates come from a search path (the queue's directory, the site's, then the
templates shipped with the code) and fail loudly when missing. Mailed-in text is never marked safe:
the HTML templates are autoescaped.
"""

from __future__ import annotations

import email.policy
import random
import re
import threading
from collections.abc import Sequence
from email.header import Header
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import jinja2
from sqlmodel import Session

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.errors import HelpdeskError
from helpdesk.mail.parse import clean_header_text
from helpdesk.store import inserts
from helpdesk.store.models import Outbox, msgid_key

_HEADER_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _packaged_templates() -> Path:
    """The templates shipped with the code: helpdesk/templates in an installed wheel
    (setup.py maps the top-level templates/ there), templates/ beside the package in
    a checkout (an editable install runs the checkout)."""
    package = Path(__file__).resolve().parent.parent  # helpdesk/, above outgoing/
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


PROJECT_TEMPLATES = _packaged_templates()


class _CachedRegistry(HeaderRegistry):
    """The stdlib builds a new header class with type() for every header it parses;
    caching the classes makes composing a mail several times faster."""

    @lru_cache(maxsize=128)  # noqa: B019  (one registry per process)
    def __getitem__(self, name: str) -> type[BaseHeader]:
        return super().__getitem__(name)


def _fold_msgids(name: str, value: str, policy: email.policy.Policy) -> str:
    return f"{name}: " + f"{policy.linesep} ".join(value.split()) + policy.linesep


class _MsgIdList(UnstructuredHeader):
    """In-Reply-To and References: msg-ids, folded between ids and never written as
    RFC 2047 encoded words, which the stdlib does to a token longer than a line (Gmail's
    ids often are): mail clients match ids byte for byte, so an encoded id unthreads."""

    def fold(self, *, policy: email.policy.Policy) -> str:
        return _fold_msgids(self.name, str(self), policy)


class _Subject(UnstructuredHeader):
    """The stdlib folds a long non-ASCII subject into encoded words and drops the spaces
    where one word ends and the next begins: "a b" reads back as "ab". The older
    encoder keeps every space inside a word."""

    def fold(self, *, policy: email.policy.Policy) -> str:
        value = str(self)
        if value.isascii() or policy.utf8:
            return super().fold(policy=policy)
        encoded = Header(value, "utf-8", header_name=self.name).encode(
            linesep=policy.linesep, maxlinelen=policy.max_line_length or 78)
        return f"{self.name}: {encoded}{policy.linesep}"


_REGISTRY = _CachedRegistry()
_REGISTRY.map_to_type("subject", _Subject)
_REGISTRY.map_to_type("in-reply-to", _MsgIdList)
_REGISTRY.map_to_type("references", _MsgIdList)

# Values the stdlib writes as they are, "Name: value" on one line when it fits the
# policy's length (checked as it folds): for each header build() and set_content()
# write, the forms whose parse gives the text back unchanged. Never an encoded-word
# marker ("=?", which it would decode). Not Content-Disposition: EmailMessage reads
# its parsed form (is_attachment).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_ADDR_SPEC = rf"{_DOT_ATOM}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"  # dot-atom@hostname
_MAILBOX = rf"(?:{_ATEXT}(?: {_ATEXT})* <{_ADDR_SPEC}>|{_ADDR_SPEC})"
_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"  # RFC 2045
_WORDS = r"[\x21-\x7e]+(?: [\x21-\x7e]+)*"  # printable ASCII, single spaces
_PLAIN_FORMS = {name: re.compile(form) for names, form in (
    (("from", "to", "cc", "reply-to"), rf"{_MAILBOX}(?:, {_MAILBOX})*"),
    (("subject", "auto-submitted", "x-auto-response-suppress", "in-reply-to", "references"),
     _WORDS),
    (("message-id",), rf"<{_DOT_ATOM}@{_DOT_ATOM}>"),
    (("mime-version",), r"1\.0"),
    (("content-type",), rf'{_TOKEN}/{_TOKEN}(?:; {_TOKEN}=(?:{_TOKEN}|"[ !#-\[\]-~]*"))*'),
    (("content-transfer-encoding",), r"7bit|8bit|quoted-printable|base64"),
    (("date",), r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug"
                r"|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4}"),
) for name in names}
_ADDR_SPEC_LIST = re.compile(rf"{_ADDR_SPEC}(?:, {_ADDR_SPEC})*")


def _is_plain(name: str, value: str) -> bool:
    form = _PLAIN_FORMS.get(name.lower())
    if form is None or "=?" in value or not form.fullmatch(value):
        return False
    if name.lower() != "date":
        return True
    try:  # the registry writes a date as format_datetime() does: one already so is plain
        return format_datetime(parsedate_to_datetime(value)) == value
    except ValueError:
        return False


class _Plain(str):
    """A header value that needs neither encoding nor folding, kept as text.

    Parsing a header into the registry's token tree and folding the tree back costs
    more than the rest of composing a mail, and for a value like these gives the text
    back unchanged (tests/test_compose.py holds the two to the same bytes). A line too
    long for the policy is folded by the registry's header, parsed then.
    """

    defects: tuple[Any, ...] = ()

    def __new__(cls, name: str, value: str) -> _Plain:
        self = super().__new__(cls, value)
        self.name = name
        return self

    def fold(self, *, policy: email.policy.Policy) -> str:
        if self.name.lower() in ("in-reply-to", "references"):
            return _fold_msgids(self.name, self, policy)
        line = f"{self.name}: {self}"
        if len(line) <= (policy.max_line_length or len(line)):
            return line + policy.linesep
        return self.parsed().fold(policy=policy)

    def parsed(self) -> BaseHeader:
        """The registry's header of this value: what the policy would have made of it."""
        return _REGISTRY[self.name](self.name, str(self))

    @property
    def addresses(self) -> tuple[Address, ...]:
        return self.parsed().addresses  # type: ignore[attr-defined, no-any-return]


class _PlainFirst:
    """The header factory of the mail we build: a plain value as it is, else the
    registry's parsed header (whose classes also give each header's max_count)."""

    def __getitem__(self, name: str) -> type[BaseHeader]:
        return _REGISTRY[name]

    def __call__(self, name: str, value: Any) -> Any:
        if isinstance(value, str) and _is_plain(name, value):
            return _Plain(name, value)
        return _REGISTRY(name, value)


POLICY = email.policy.default.clone(header_factory=_REGISTRY)
# for mail we build ourselves (build(), their_mail): POLICY with plain values kept plain
BUILD_POLICY = POLICY.clone(header_factory=_PlainFirst())
SMTP_POLICY = email.policy.SMTP.clone(header_factory=_REGISTRY)
SMTPUTF8_POLICY = email.policy.SMTPUTF8.clone(header_factory=_REGISTRY)


class TemplateNotFound(HelpdeskError):
    pass


class Templates:
    """The mail templates of one Settings, from a search path: the queue's
    ([queue.NAME] templates), the site's ([paths] templates), then the shipped ones.

    Each path's jinja environment (and its cache of compiled templates) is built on
    first use and belongs to this object, which belongs to its Settings: a daemon's
    HUP clears its own, and a second Settings in the process shares nothing.
    """

    def __init__(self, settings: Settings) -> None:
        self._site = [settings.paths.templates] if settings.paths.templates else []
        self._queues = {name: q.templates for name, q in settings.queue.items() if q.templates}
        self._environments: dict[tuple[Path, ...], jinja2.Environment] = {}
        self._lock = threading.Lock()  # the pipeline, outbox and scheduler render at once

    def search_path(self, queue: str = "") -> tuple[Path, ...]:
        own = [self._queues[queue]] if queue in self._queues else []
        return (*own, *self._site, PROJECT_TEMPLATES)

    def environment(self, queue: str = "") -> jinja2.Environment:
        path = self.search_path(queue)
        with self._lock:
            env = self._environments.get(path)
            if env is None:
                env = self._environments[path] = jinja2.Environment(
                    loader=jinja2.FileSystemLoader([str(p) for p in path]),
                    undefined=jinja2.StrictUndefined,
                    autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
                    keep_trailing_newline=True,
                )
            return env

    def render(self, name: str, context: dict[str, Any],
               queue: str = "") -> tuple[str, str, str | None]:
        """(subject, text, html or None) of template set `name`; a missing subject or
        text raises TemplateNotFound naming every directory searched."""
        env = self.environment(queue)
        try:
            subject = env.get_template(f"{name}.subject.j2").render(context)
            text = env.get_template(f"{name}.txt.j2").render(context)
        except jinja2.TemplateNotFound as err:
            searched = ", ".join(str(p) for p in self.search_path(queue))
            raise TemplateNotFound(f"template {err.name!r} not found in {searched}") from err
        try:
            html: str | None = env.get_template(f"{name}.html.j2").render(context)
        except jinja2.TemplateNotFound:
            html = None  # the HTML alternative is optional
        return clean_header_text(subject), text, html

    def clear(self) -> None:
        """Forget the compiled templates (HUP): edited files are read again."""
        with self._lock:
            self._environments.clear()


def templates(settings: Settings) -> Templates:
    """The template loader that belongs to `settings` (made on first use)."""
    # by instance: model_copy shares the derived dict, and a copy may have other paths
    key = f"templates-{id(settings)}"
    loader = settings.derived.get(key)
    if loader is None:  # setdefault: two threads racing here end up with the same one
        loader = settings.derived.setdefault(key, Templates(settings))
    assert isinstance(loader, Templates)
    return loader


def render(settings: Settings, name: str, context: dict[str, Any],
           queue: str = "") -> tuple[str, str, str | None]:
    """(subject, text, html or None) of template set `name`, for mail about a ticket in
    `queue` ("" : none, the site's and shipped templates)."""
    return templates(settings).render(name, context, queue)


def tagged_subject(prefix: str, number: int, subject: str) -> str:
    tag = f"[{prefix}-{number}]"
    subject = clean_header_text(subject) or "(no subject)"
    return subject if tag.lower() in subject.lower() else f"{tag} {subject}"


# Room for the headers and the MIME structure, and the cost of an encoded byte
# (base64 in 76-character lines; the stdlib picks quoted-printable only when shorter)
_HEADROOM = 16 * 1024
_NOTES_ROOM = 2 * 1024
_PART_COST = 512
_MAX_NOTES = 20
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*")


def _encoded(size: int) -> int:
    return size * 4 // 3 * 78 // 76 + _PART_COST


def utf8_size(text: str) -> int:
    """len(text.encode()) without copying a huge text at once."""
    if text.isascii():
        return len(text)
    step = 1 << 20
    return sum(len(text[i:i + step].encode()) for i in range(0, len(text), step))


def cut(text: str, max_bytes: int) -> tuple[str, int]:
    """(text cut to at most max_bytes of UTF-8, bytes left out); never splits a character."""
    head = text[:max_bytes].encode()[:max_bytes].decode("utf-8", "ignore")
    if len(head) == len(text):
        return text, 0
    return head, utf8_size(text) - len(head.encode())


def size_text(size: int) -> str:
    """1234567 -> '1.2 MB', 30000 -> '29 KB', 500 -> '500 bytes'."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{round(size / 1024)} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def _bounded(limit: int, text: str, html: str | None,
             attachments: Sequence[tuple[str, str, bytes]],
             ) -> tuple[str, str | None, list[tuple[str, str, bytes]]]:
    """Text, HTML and attachments that together stay under `limit` bytes on the wire:
    the HTML alternative goes first (the text carries the same), then attachments that
    do not fit, then the end of the text; each loss is a note at the end of the text."""
    budget = limit - _HEADROOM - _NOTES_ROOM
    text_size = utf8_size(text)
    if html is not None and _encoded(text_size) + _encoded(utf8_size(html)) > budget:
        html = None
    notes = []
    if _encoded(text_size) > budget:
        text, more = cut(text, budget * 3 // 4 * 76 // 78 - _PART_COST)
        notes.append(f"[cut: {size_text(more)} more not sent: this mail would exceed "
                     f"{size_text(limit)}]")
    room = budget - _encoded(utf8_size(text)) - (_encoded(utf8_size(html)) if html else 0)
    kept = []
    for filename, ctype, data in attachments:
        if _encoded(len(data)) <= room:
            kept.append((filename, ctype, data))
            room -= _encoded(len(data))
        else:
            notes.append(f"[{' '.join(filename.split())[:200]} ({size_text(len(data))}) not "
                         f"attached: this mail would exceed {size_text(limit)}]")
    if len(notes) > _MAX_NOTES:
        notes[_MAX_NOTES:] = [f"[and {len(notes) - _MAX_NOTES} more not attached]"]
    if notes:
        text = f"{text.rstrip()}\n\n" + "\n".join(notes) + "\n"
    return text, html, kept


def build(settings: Settings, *, to: Sequence[str], subject: str, text: str,
          html: str | None = None, cc: Sequence[str] = (), reply_to: str | None = None,
          in_reply_to: str = "", references: Sequence[str] = (), automatic: bool = True,
          id_hint: str = "", attachments: Sequence[tuple[str, str, bytes]] = (),
          from_name: str = "") -> EmailMessage:
    """A mail from the helpdesk address; `from_name` (default: the helpdesk's name) is
    the display name, e.g. the agent's for their reply."""
    hd = settings.helpdesk
    msg = EmailMessage(policy=BUILD_POLICY)
    msg["From"] = _address(from_name or hd.name, hd.address)
    msg["To"] = ", ".join(_in_header(a) for a in to)
    if cc:
        msg["Cc"] = ", ".join(_in_header(a) for a in cc)
    msg["Subject"] = clean_header_text(subject)
    msg["Date"] = format_datetime(clock.now())
    msg["Message-ID"] = make_msgid(idstring=id_hint or None, domain=hd.domain)
    if reply_to:
        msg["Reply-To"] = _in_header(reply_to)
    if in_reply_to := _in_header(in_reply_to):
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    refs = [r for r in map(_in_header, references) if r]
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs[-20:])
    if automatic:
        msg["Auto-Submitted"] = "auto-replied"
        # Exchange honours this: no out-of-office answers to our automatic mail
        msg["X-Auto-Response-Suppress"] = "All"
    text, html, attachments = _bounded(settings.outgoing.max_message_size, text, html,
                                       attachments)
    msg.set_content(text)
    if html:
        msg.make_alternative(boundary=_boundary(text, html))
        msg.add_alternative(html, subtype="html")
    if attachments:
        msg.make_mixed(boundary=_boundary(text, html or ""))
    for filename, ctype, data in attachments:
        if not _CONTENT_TYPE.fullmatch(ctype):
            ctype = "application/octet-stream"  # mailed-in: never trusted into a header
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(data, maintype=maintype or "application",
                           subtype=subtype or "octet-stream", filename=filename)
    return msg


def _boundary(*texts: str) -> str:
    """A MIME boundary that none of the texts holds, short enough for the Content-Type
    line to need no folding. A quoted-printable or base64 body never holds "=_" (the
    Generator would draw a boundary and compile a regular expression to check it,
    for every multipart mail)."""
    while True:
        boundary = f"=_hd{random.getrandbits(96):024x}"
        if not any(boundary in text for text in texts):
            return boundary


@lru_cache(maxsize=64)
def _address(name: str, addr_spec: str) -> str:
    """`name <addr_spec>` quoted as need be (Address checks and formats it; the
    registry parses a header made of an Address from this very text)."""
    return str(Address(name, addr_spec=addr_spec))


def _in_header(value: str) -> str:
    """A stored id or address as a header may carry it: without CR, LF or other controls.

    Mail stored before parse removed them still has them, and the stdlib refuses a
    header with one (it reads VT or FS as a line break), which would fail every later
    mail on the ticket.
    """
    return _HEADER_CONTROLS.sub("", value).strip()


def _as_bytes(msg: EmailMessage) -> bytes:
    try:
        return msg.as_bytes(policy=SMTP_POLICY)
    except UnicodeEncodeError:
        # an internationalised address (RFC 6532): the relay must speak SMTPUTF8
        return msg.as_bytes(policy=SMTPUTF8_POLICY)


def wire_bytes(msg: EmailMessage) -> bytes:
    """The mail as queue() sends it: RFC 2047 headers, SMTPUTF8 only when an address
    needs it. A reply held for review is kept in this form, so it leaves like any other."""
    return _as_bytes(msg)


def _addr_specs(header: Any) -> list[str]:
    """The addresses of a To, Cc or Bcc header (None: none). A plain list of bare
    addresses, as build() writes a customer's or agents', is split as it is (the
    registry's parse gives the same addr_specs); anything else is parsed."""
    if not header:
        return []
    if isinstance(header, _Plain) and _ADDR_SPEC_LIST.fullmatch(header):
        return header.split(", ")
    return [a.addr_spec for a in header.addresses]


class Queued(NamedTuple):
    id: int  # the outbox row's
    message_id: str  # without the angle brackets


def queue(session: Session, msg: EmailMessage, *, kind: str, ticket_id: int | None,
          mail_from: str, automatic: bool, agent: str = "") -> Queued:
    """Add the mail to the outbox; it leaves when the surrounding transaction commits.
    `agent`: the agent a notification goes to (a reply In-Reply-To it proves them)."""
    rcpts = [a for h in ("To", "Cc", "Bcc") for a in _addr_specs(msg[h])]
    if msg["Bcc"]:
        del msg["Bcc"]
    message_id = str(msg["Message-ID"]).strip().strip("<>")
    row = inserts.values(
        Outbox,
        ticket_id=ticket_id,
        kind=kind,
        automatic=automatic,
        mail_from=mail_from,
        rcpt_tos=rcpts,
        recipient=(rcpts[0].lower() if rcpts else ""),
        message_id=message_id,
        msgid_key=msgid_key(message_id),
        raw=_as_bytes(msg),
        agent=agent,
    )
    # a plain insert, at once: nothing reads the row back as an object
    return Queued(inserts.insert(session, Outbox, row), message_id)
