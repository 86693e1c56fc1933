"""Tickets an agent opens: internal (no customer) or on behalf of a customer.

Three doors, one set of functions: the desk (web/new_ticket.py), mail to the support
address from an agent's own address (pipeline.py, `by_mail`) and the shell
(`helpdesk tickets new`, commands/new_ticket.py).

- Internal: `open_internal` makes the ticket in the caller's transaction: no contact,
  `Ticket.internal` set, the first message stored like any mail (searchable, with its
  attachments), a `created` event naming the agent. It never mails a customer (there
  is none: to_customer refuses, survey/steps.py excludes it) and has no status page.
- On behalf of a customer: `spool_for_customer` writes the customer's request as an
  RFC 5322 mail (`request_mail`, also the JSON API's) and `spool.put`s it, so rules,
  dedupe and the acknowledgement with the status link apply as to any mail. Who opened
  it and what they chose ride in the spool envelope (`Envelope.extra["opened_by"]`),
  which only our own code writes, never in the mail's headers, which anyone could.

Either way the fields the agent chose (queue, category, priority, assignee) are applied
as the agent's #commands through agents.actions.run_commands AFTER the rules' decision:
they win over rules, are checked like any command and are recorded in the history
under the agent's name.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.headerregistry import Address
from email.utils import make_msgid
from typing import Any

from sqlmodel import Session

from helpdesk.agents import actions as agent_actions
from helpdesk.agents import notify
from helpdesk.agents.registry import Command, Reply, command, split
from helpdesk.config.agents import Agent, Directory
from helpdesk.config.settings import Settings
from helpdesk.mail import authres, parse
from helpdesk.mail.automatic import Automatic
from helpdesk.mail.mimeparts import Attachment
from helpdesk.outgoing import their_mail
from helpdesk.rules import Decision
from helpdesk.spool import Envelope, Spool
from helpdesk.store import queries
from helpdesk.store import tickets as store
from helpdesk.store.models import Ticket
from helpdesk.thread import ThreadResult

OPENED_BY = "opened_by"  # the spool envelope's key (Envelope.extra)
REPORTED = "opened by "  # how an internal ticket's first message is threaded (Message)
# the first line of an agent's mail that makes it a customer's ticket
CUSTOMER_LINE = re.compile(r"\A\s*#customer[ \t]+<?([^\s<>@]+@[^\s<>]+?)>?[ \t]*(?:\n|\Z)",
                           re.IGNORECASE)

log = logging.getLogger("helpdesk.agents.new_ticket")


@dataclass(frozen=True)
class Fields:
    """What the agent chose; empty: the rules' (or the default's) choice stands."""

    queue: str = ""
    category: str = ""
    priority: str = ""
    assign: str = ""

    def commands(self) -> tuple[Command, ...]:
        chosen = (("queue", self.queue), ("category", self.category),
                  ("priority", self.priority), ("assign", self.assign))
        return tuple(command(name, value) for name, value in chosen if value)

    def to_dict(self) -> dict[str, str]:
        return {"queue": self.queue, "category": self.category, "priority": self.priority,
                "assign": self.assign}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fields:
        return cls(**{k: str(data.get(k) or "") for k in ("queue", "category", "priority",
                                                          "assign")})


def form_nonce() -> str:
    """A new-ticket form's own id (a hidden field): when it was shown, and a random part."""
    return f"{int(time.time())}-{secrets.token_hex(12)}"


def form_message_id(settings: Settings, nonce: str) -> tuple[str, datetime | None]:
    """The Message-ID and Date of a form's request. The same nonce (a double submit, a
    resent form) with the same text gives the same bytes (request_mail), so the store's
    dedupe (Message-ID and content hash) makes one ticket of it."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "", nonce)[:64] or secrets.token_hex(12)
    stamp = safe.partition("-")[0]
    when = datetime.fromtimestamp(int(stamp), UTC) if stamp.isdigit() and \
        len(stamp) <= 11 else None
    return f"<new.{safe}@{settings.helpdesk.domain}>", when


def request_mail(settings: Settings, *, from_name: str, from_addr: str, subject: str,
                 text: str, attachments: tuple[Attachment, ...] = (), message_id: str = "",
                 sent_at: datetime | None = None,
                 made_by: tuple[str, str] | None = None) -> tuple[bytes, str]:
    """A request to the helpdesk written as the mail it stands for: (bytes, Message-ID).
    `made_by` is one header (name, value) saying which door made it, for the reader.
    Given a Message-ID and time the bytes are the same each time (the MIME boundary too),
    so the same request made twice is one mail to the store's dedupe."""
    message_id = message_id or make_msgid(domain=settings.helpdesk.domain)
    raw = their_mail.build(
        name=from_name, address=from_addr,
        to=Address(settings.helpdesk.name, addr_spec=settings.helpdesk.address),
        subject=subject, text=text, date=sent_at, message_id=message_id,
        headers=dict([made_by]) if made_by is not None else {},
        attachments=[(a.filename, a.content_type, a.data) for a in attachments])
    return raw, message_id


def refuse_customer(settings: Settings, directory: Directory, address: str) -> str:
    """Why `address` cannot be the customer ('' when it can)."""
    if not re.fullmatch(r"[^\s@<>\"]+@[^\s@<>\"]+\.[^\s@<>\"]+", address):
        return f"{address!r} is not an e-mail address"
    if directory.by_address(address) is not None:
        return "that address is an agent's: leave the customer empty for an internal ticket"
    if settings.is_own_address(address):
        return "that address is the helpdesk's own"
    return ""


def spool_for_customer(settings: Settings, agent: Agent, *, customer: str, name: str,
                       subject: str, text: str, attachments: tuple[Attachment, ...],
                       fields: Fields, ack: bool, route: str, message_id: str = "",
                       sent_at: datetime | None = None) -> str:
    """Spool the customer's request (durably); returns the spool entry's name."""
    raw, _ = request_mail(settings, from_name=name, from_addr=customer, subject=subject,
                          text=text, attachments=attachments, message_id=message_id,
                          sent_at=sent_at,
                          made_by=("X-Helpdesk-Opened-By", f"{agent.name} ({route})"))
    envelope = Envelope(route=route[:100], mail_from=customer,
                        rcpt_tos=(settings.helpdesk.address,),
                        extra={OPENED_BY: {"agent": agent.name, "ack": ack,
                                           **fields.to_dict()}})
    return Spool(settings.data_dir / "spool").put(raw, envelope)


def open_internal(session: Session, settings: Settings, directory: Directory, agent: Agent,
                  raw: bytes, *, route: str, fields: Fields,
                  how: str) -> tuple[Ticket, bool, tuple[str, ...]]:
    """The internal ticket for the agent's request `raw` (a mail, or one written by
    `request_mail`), in the caller's transaction: (ticket, made now, refused fields).
    The same request again (its Message-ID and content) is the ticket it made the first
    time. With refused fields the desk and the shell roll back; mail keeps the ticket."""
    mail = parse.parse(raw)
    earlier = queries.stored_message(session, store.dedupe_key(mail))
    if earlier is not None:
        found = queries.ticket(session, earlier.ticket_id)
        assert found is not None
        return found, False, ()
    ticket = store.create_ticket(session, subject=mail.subject, contact=None,
                                 queue=settings.helpdesk.default_queue, internal=True)
    store.event(session, ticket, "created", actor=agent.name,
                detail=f"internal ticket, opened by {agent.name} {how}")
    first = store.store_incoming(session, settings.data_dir, ticket, mail, raw, route=route,
                                 threaded_by=f"{REPORTED}{agent.name}")
    first.internal = True  # an agent's mail, as the search and the ticket page say
    errors = apply_fields(session, settings, directory, ticket, agent, fields)
    # an assignee the agent chose was told by #assign; else the queue's team hears of it
    names = [] if ticket.assignee else notify.new_ticket_recipients(settings, directory,
                                                                    ticket)
    notify.send(session, settings, directory, ticket,
                notify.Notice("new", mail.body_text, author=agent.shown_name,
                              by_agent=agent.name, attachments=mail.attachments), names)
    return ticket, True, errors


def apply_fields(session: Session, settings: Settings, directory: Directory, ticket: Ticket,
                 agent: Agent, fields: Fields) -> tuple[str, ...]:
    """The agent's choices as their #commands (checked, then applied, or none)."""
    chosen = fields.commands()
    if not chosen:
        return ()
    return agent_actions.run_commands(session, settings, directory, ticket, agent,
                                      Reply(chosen)).errors


def on_behalf(session: Session, settings: Settings, directory: Directory, ticket: Ticket,
              envelope: Envelope, decision: Decision) -> Decision:
    """For a new ticket the pipeline just opened (rules applied): when an agent opened it
    for the customer (the envelope says so), record that, apply the agent's fields over
    the rules' and, if the agent chose no acknowledgement, return a decision without."""
    opened = envelope.extra.get(OPENED_BY)
    agent = directory.agent(str(opened.get("agent", ""))) if isinstance(opened, dict) else None
    if agent is None or not isinstance(opened, dict):
        return decision
    store.event(session, ticket, "opened-by", actor=agent.name,
                detail=f"on behalf of the customer, via {envelope.route}")
    errors = apply_fields(session, settings, directory, ticket, agent,
                          Fields.from_dict(opened))
    if errors:  # checked before spooling; config may have changed since: keep the ticket
        store.event(session, ticket, "command-error", actor=agent.name,
                    detail="; ".join(errors))
    return decision if opened.get("ack", True) else replace(decision, ack_template="")


# -- by mail -----------------------------------------------------------------------------

def mail_opener(settings: Settings, directory: Directory, mail: parse.ParsedMail,
                automatic: Automatic, found: ThreadResult) -> Agent | None:
    """The agent whose own mail to the support address opens a ticket: from an agent's
    address, written by a person, a new mail (naming no ticket in any way: no reply
    address, In-Reply-To, References or [HD-n] subject tag; such a mail without proof
    stays what it was, customer mail running no command, agents/reply.py), and proven to
    be theirs by an Authentication-Results header of one of [agents_auth]
    trusted_authserv_ids (our MTA) showing DKIM or SPF passing for their domain.

    A reply proves its agent by the token of the notification it answers; a new mail has
    none, and its From is anyone's to write. Without that proof (or with no trusted
    server configured: any sender can write the header) it is not an agent's new ticket,
    so a stranger can neither run commands nor, with #customer, make us mail whomever
    they like: the mail is handled as it was before (customer mail, no commands)."""
    agent = directory.by_address(mail.from_addr)
    if agent is None or automatic.machine_written or automatic.no_answer:
        return None
    if found.ticket_id or found.linked_ticket_id or found.reply_target is not None \
            or mail.in_reply_to or mail.references:
        return None
    trusted = settings.agents_auth.trusted_authserv_ids
    domain = mail.from_addr.rpartition("@")[2]
    if not trusted or not authres.passes(mail.header_all("Authentication-Results"), domain,
                                         trusted):
        log.info("mail from agent %s to the support address without a trusted DKIM/SPF "
                 "pass: not a new ticket of theirs", agent.name)
        return None
    return agent


def _fields_of(commands: tuple[Command, ...]) -> tuple[Fields, list[str]]:
    """The four fields from an opening mail's command lines; other commands are named."""
    given = {c.name: c.arg for c in commands}
    others = [c.line for c in commands if c.name not in ("queue", "category", "priority",
                                                         "assign")]
    return Fields(given.get("queue", ""), given.get("category", ""),
                  given.get("priority", ""), given.get("assign", "")), others


def by_mail(session: Session, settings: Settings, directory: Directory, agent: Agent,
            mail: parse.ParsedMail, raw: bytes, envelope: Envelope) -> tuple[str, str]:
    """The agent's mail opens a ticket: internal, or with `#customer ADDR` on its first
    line the customer's (spooled as their request, acknowledged to them). Returns
    (ticket or "", what was done) for the pipeline's outcome."""
    text = mail.body_text.replace("\r\n", "\n")
    customer = CUSTOMER_LINE.match(text)
    fields, others = _fields_of(split(text[customer.end():] if customer else text).commands)
    refused = refuse_customer(settings, directory, customer.group(1).lower()) \
        if customer else ""
    if customer is None or refused:  # a refused customer: kept internal, and told why
        ticket, _, errors = open_internal(session, settings, directory, agent, raw,
                                          route=envelope.route, fields=fields, how="by mail")
        errors = (*errors, *(f"{line}: not for a new ticket" for line in others),
                  *([f"#customer: {refused}"] if refused else []))
        if errors:
            store.event(session, ticket, "command-error", actor=agent.name,
                        detail="; ".join(errors))
            notify.command_error(session, settings, ticket, agent, list(errors),
                                 in_reply_to=mail.message_id)
        return f"{settings.helpdesk.ticket_prefix}-{ticket.id}", "internal ticket by mail"
    address = customer.group(1).lower()
    body = split(text[customer.end():]).text
    # the same agent's mail again (redelivered) spools the same request: one ticket
    seed = hashlib.sha256(f"{mail.message_id}\0{mail.content_hash}".encode()).hexdigest()
    name = spool_for_customer(
        settings, agent, customer=address, name="", subject=mail.subject, text=body,
        attachments=tuple(a for a in mail.attachments if not a.inline), fields=fields,
        ack=True, route=f"mail:{agent.name}",
        message_id=form_message_id(settings, seed[:40])[0], sent_at=mail.date)
    return "", f"spooled as {name} for {address}"
