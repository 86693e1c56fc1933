"""Helpers for the rules tests: build a mail and its MailContext in a few words."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

from helpdesk.config.agents import build as build_directory
from helpdesk.mail.parse import ParsedMail, parse
from helpdesk.rules import MailContext
from helpdesk.rules.loader import load_rules
from helpdesk.rules.model import RuleSet
from helpdesk.spool import Envelope

# the rules example from the routing issue, exactly as written there
ISSUE_EXAMPLE = """
[[rule]]
name = "Billing by keyword"
when.subject = { regex = "(?i)invoice|refund|billing" }
set = { category = "billing", queue = "billing" }

[[rule]]
name = "VIP customers"
when.from_domain = "bigcorp.test"
set = { priority = "high" }

[[rule]]
name = "Outage reports"
when.any = [ { subject = { contains = "down" } }, { body = { regex = "(?i)outage|not reachable" } } ]
set = { priority = "critical", category = "incident" }
assign = { team = "ops", strategy = "round_robin" }
final = ["priority"]

[[rule]]
name = "Newsletters"
when.header."List-Id" = { exists = true }
spam = true
stop = true
"""

AGENTS = {
    "agent": [
        {"name": "alice", "email": "alice@staff.test", "teams": ["support", "ops"]},
        {"name": "bob", "email": "bob@staff.test", "teams": ["support", "ops"]},
        {"name": "carol", "email": "carol@staff.test", "teams": ["support", "ops"]},
        {"name": "dave", "email": "dave@staff.test", "teams": ["support", "ops"]},
        {"name": "lisa", "email": "lisa@staff.test", "teams": ["support"], "role": "lead"},
    ],
    "team": [{"name": "support", "lead": "lisa"}],
}


def mail(
    subject: str = "Hello",
    body: str = "Just a question.",
    sender: str = "Kim Customer <kim@example.org>",
    to: str = "support@example.test",
    cc: str = "",
    headers: dict[str, str] | None = None,
    attachments: tuple[tuple[str, str, bytes], ...] = (),
) -> ParsedMail:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Message-ID"] = "<test@example.org>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    for filename, ctype, data in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return parse(msg.as_bytes())


def ctx(
    parsed: ParsedMail | None = None,
    *,
    route: str = "smtp",
    rcpt: tuple[str, ...] = (),
    is_reply: bool = False,
    previous_tickets: int = 0,
    arrived_at: datetime | None = None,
    routed_queue: str = "",
) -> MailContext:
    return MailContext(
        mail=parsed or mail(),
        envelope=Envelope(route=route, rcpt_tos=rcpt),
        is_reply=is_reply,
        previous_tickets=previous_tickets,
        arrived_at=arrived_at,
        routed_queue=routed_queue,
    )


def ruleset(tmp_path: Path, text: str, **kwargs: object) -> RuleSet:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    kwargs.setdefault("directory", build_directory(AGENTS))
    return load_rules([path], **kwargs)  # type: ignore[arg-type]
