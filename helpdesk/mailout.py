"""Build outgoing mail from templates and queue it in the outbox (same transaction).

Templates come from a search path (site directory first, then the templates shipped
with the code) and fail loudly when missing. Mailed-in text is never marked safe:
the HTML templates are autoescaped.
"""

from __future__ import annotations

import email.policy
from collections.abc import Sequence
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from sqlmodel import Session

from helpdesk import clock
from helpdesk.config import Settings
from helpdesk.parse import clean_header_text
from helpdesk.store.models import Outbox, msgid_key


def _packaged_templates() -> Path:
    """The templates shipped with the code: helpdesk/templates in an installed wheel
    (setup.py maps the top-level templates/ there), templates/ beside the package in
    a checkout (an editable install runs the checkout)."""
    package = Path(__file__).resolve().parent
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


PROJECT_TEMPLATES = _packaged_templates()


class _CachedRegistry(HeaderRegistry):
    """The stdlib builds a new header class with type() for every header it parses;
    caching the classes makes composing a mail several times faster."""

    @lru_cache(maxsize=128)  # noqa: B019  (one registry per process)
    def __getitem__(self, name: str) -> type[BaseHeader]:
        return super().__getitem__(name)


_REGISTRY = _CachedRegistry()
POLICY = email.policy.default.clone(header_factory=_REGISTRY)
SMTP_POLICY = email.policy.SMTP.clone(header_factory=_REGISTRY)
SMTPUTF8_POLICY = email.policy.SMTPUTF8.clone(header_factory=_REGISTRY)


class TemplateNotFound(Exception):
    pass


@lru_cache(maxsize=8)
def _environment(search: tuple[str, ...]) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(list(search)),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
        keep_trailing_newline=True,
    )


def template_search_path(settings: Settings) -> tuple[str, ...]:
    paths = []
    if settings.paths.templates:
        paths.append(str(settings.paths.templates))
    paths.append(str(PROJECT_TEMPLATES))
    return tuple(paths)


def render(settings: Settings, name: str, context: dict[str, Any]) -> tuple[str, str, str | None]:
    """(subject, text, html or None) of template set `name`."""
    env = _environment(template_search_path(settings))
    try:
        subject = env.get_template(f"{name}.subject.j2").render(context)
        text = env.get_template(f"{name}.txt.j2").render(context)
    except jinja2.TemplateNotFound as err:
        raise TemplateNotFound(
            f"template {err.name!r} not found in {', '.join(env.loader.searchpath)}"  # type: ignore[union-attr]
        ) from err
    try:
        html: str | None = env.get_template(f"{name}.html.j2").render(context)
    except jinja2.TemplateNotFound:
        html = None
    return clean_header_text(subject), text, html


def clear_template_cache() -> None:
    _environment.cache_clear()


def tagged_subject(prefix: str, number: int, subject: str) -> str:
    tag = f"[{prefix}-{number}]"
    subject = clean_header_text(subject) or "(no subject)"
    return subject if tag.lower() in subject.lower() else f"{tag} {subject}"


def build(settings: Settings, *, to: Sequence[str], subject: str, text: str,
          html: str | None = None, cc: Sequence[str] = (), reply_to: str | None = None,
          in_reply_to: str = "", references: Sequence[str] = (), automatic: bool = True,
          id_hint: str = "", attachments: Sequence[tuple[str, str, bytes]] = ()) -> EmailMessage:
    hd = settings.helpdesk
    msg = EmailMessage(policy=POLICY)
    msg["From"] = Address(hd.name, addr_spec=hd.address)
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(clock.now())
    msg["Message-ID"] = make_msgid(idstring=id_hint or None, domain=hd.domain)
    if reply_to:
        msg["Reply-To"] = reply_to
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    refs = [r for r in references if r]
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs[-20:])
    if automatic:
        msg["Auto-Submitted"] = "auto-replied"
        # Exchange honours this: no out-of-office answers to our automatic mail
        msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    for filename, ctype, data in attachments:
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(data, maintype=maintype or "application",
                           subtype=subtype or "octet-stream", filename=filename)
    return msg


def _as_bytes(msg: EmailMessage) -> bytes:
    try:
        return msg.as_bytes(policy=SMTP_POLICY)
    except UnicodeEncodeError:
        # an internationalised address (RFC 6532): the relay must speak SMTPUTF8
        return msg.as_bytes(policy=SMTPUTF8_POLICY)


def queue(session: Session, msg: EmailMessage, *, kind: str, ticket_id: int | None,
          mail_from: str, automatic: bool) -> Outbox:
    """Add the mail to the outbox; it leaves when the surrounding transaction commits."""
    rcpts = [a.addr_spec for h in ("To", "Cc", "Bcc") for a in (msg[h].addresses if msg[h] else ())]
    if msg["Bcc"]:
        del msg["Bcc"]
    message_id = str(msg["Message-ID"]).strip().strip("<>")
    row = Outbox(
        ticket_id=ticket_id,
        kind=kind,
        automatic=automatic,
        mail_from=mail_from,
        rcpt_tos=rcpts,
        recipient=(rcpts[0].lower() if rcpts else ""),
        message_id=message_id,
        msgid_key=msgid_key(message_id),
        raw=_as_bytes(msg),
    )
    session.add(row)
    return row
