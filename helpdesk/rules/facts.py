"""What the conditions look at: values drawn from a MailContext once per mail, lazily.

Text fields give a tuple of strings (an address list gives one per address) and
a condition holds when any of them matches. Each value is computed, and
case-folded, at most once per evaluation however many rules ask for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from helpdesk import clock
from helpdesk.hours import BusinessHours
from helpdesk.rules import MailContext
from helpdesk.rules import channel as web_form
from helpdesk.rules.matchers import Budget

log = logging.getLogger(__name__)


def _domain(address: str) -> str:
    return address.rpartition("@")[2] if "@" in address else ""


def _mailbox(ctx: MailContext) -> tuple[str, ...]:
    """The IMAP mailbox name for imap:NAME routes, else the SMTP recipients."""
    route = ctx.envelope.route
    if route.startswith("imap:"):
        return (route.removeprefix("imap:"),)
    return ctx.envelope.rcpt_tos


def _recipients(ctx: MailContext) -> tuple[str, ...]:
    m = ctx.mail
    return tuple(dict.fromkeys((*m.delivered_to, *ctx.envelope.rcpt_tos, *m.to, *m.cc)))


def _attachments(ctx: MailContext) -> tuple:  # type: ignore[type-arg]
    return tuple(a for a in ctx.mail.attachments if not a.inline)


TEXT_FIELDS: dict[str, Callable[[MailContext], tuple[str, ...]]] = {
    "from": lambda c: (c.mail.from_addr,) if c.mail.from_addr else (),
    "from_domain": lambda c: (_domain(c.mail.from_addr),) if "@" in c.mail.from_addr else (),
    "from_name": lambda c: (c.mail.from_name,) if c.mail.from_name else (),
    "to": lambda c: c.mail.to,
    "cc": lambda c: c.mail.cc,
    "delivered_to": lambda c: c.mail.delivered_to,
    "recipient": _recipients,
    "mailbox": _mailbox,
    "route": lambda c: (c.envelope.route,),
    "subject": lambda c: (c.mail.subject,),
    "body": lambda c: (c.mail.body_text,),
    "attachment_type": lambda c: tuple(a.content_type for a in _attachments(c)),
    "attachment_name": lambda c: tuple(a.filename for a in _attachments(c) if a.filename),
    "organisation": lambda c: (c.organisation,) if c.organisation else (),
    "channel": lambda c: (web_form.channel(c.envelope),),
    "reporter_priority": lambda c: (p,) if (p := web_form.reporter_priority(c.envelope))
    else (),
}

BOOL_FIELDS: dict[str, Callable[[MailContext], bool]] = {
    "is_reply": lambda c: c.is_reply,
    "has_attachment": lambda c: bool(_attachments(c)),
    "vip": lambda c: c.vip,
}

NUMBER_FIELDS: dict[str, Callable[[MailContext], int]] = {
    "size": lambda c: c.mail.size,
    "previous_tickets": lambda c: c.previous_tickets,
}


class Facts:
    """One mail's values, computed on first use."""

    __slots__ = ("_folded", "_headers", "_hours", "_open", "_values", "budget", "ctx")

    def __init__(self, ctx: MailContext, hours: BusinessHours | None, budget: Budget) -> None:
        self.ctx = ctx
        # the time the regexes of all rules may still take for this mail
        self.budget = budget
        self._hours = hours
        self._values: dict[str, tuple[str, ...]] = {}
        self._folded: dict[str, tuple[str, ...]] = {}
        self._headers: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._open: bool | None = None

    def values(self, field: str) -> tuple[str, ...]:
        try:
            return self._values[field]
        except KeyError:
            found = self._values[field] = TEXT_FIELDS[field](self.ctx)
            return found

    def folded(self, field: str) -> tuple[str, ...]:
        try:
            return self._folded[field]
        except KeyError:
            found = self._folded[field] = tuple(v.casefold() for v in self.values(field))
            return found

    def header(self, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """All values of a header (any case in the name), raw and case-folded."""
        found = self._headers.get(name)
        if found is None:
            raw = tuple(self.ctx.mail.header_all(name))
            found = self._headers[name] = (raw, tuple(v.casefold() for v in raw))
        return found

    def flag(self, field: str) -> bool:
        return BOOL_FIELDS[field](self.ctx)

    def number(self, field: str) -> int:
        return NUMBER_FIELDS[field](self.ctx)

    def within_hours(self) -> bool:
        """Arrival inside business hours; with none configured, always inside."""
        if self._open is None:
            self._open = self._hours is None or self._hours.is_open(arrival(self.ctx))
        return self._open


def arrival(ctx: MailContext) -> datetime:
    """When the mail arrived: the context's time, else the envelope's, else now."""
    if ctx.arrived_at is not None:
        return ctx.arrived_at
    if ctx.envelope.received_at:
        try:
            return datetime.fromisoformat(ctx.envelope.received_at)
        except ValueError:
            log.warning("message <%s>: envelope received_at %r is not a time; taking now "
                        "as its arrival", ctx.mail.message_id, ctx.envelope.received_at)
    return clock.now()
