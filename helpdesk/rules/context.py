"""From Settings to rules: the files to read, and the MailContext for one mail.

`route_queue` is the queue a mail gets by where it arrived, before any rule runs:
the IMAP mailbox's `queue`, else the first recipient matching a `[queue.NAME]
address` (Delivered-To, then the SMTP RCPT TO, then To, then Cc), else a `queue`
the ingest put in the envelope's extra. Rules may override it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from helpdesk.config import agents
from helpdesk.config.settings import Settings
from helpdesk.hours import BusinessHours, HoursError, parse_hours
from helpdesk.mail.parse import ParsedMail
from helpdesk.rules import MailContext
from helpdesk.rules.loader import Problem, RuleSetError, load_rules, rule_files
from helpdesk.rules.model import RuleSet
from helpdesk.spool import Envelope


@dataclass(frozen=True)
class RulePaths:
    rules: Path
    rules_dir: Path
    agents: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> RulePaths:
        paths = settings.paths
        return cls(
            settings.beside_config(paths.rules, "rules.toml"),
            settings.beside_config(paths.rules_dir, "rules.d"),
            settings.beside_config(paths.agents, "agents.toml"),
        )

    def files(self) -> list[Path]:
        return rule_files(self.rules, self.rules_dir)


def load_from_settings(settings: Settings) -> RuleSet:
    """agents.toml, business hours and the rules files of `settings`, validated together.

    Raises RuleSetError (every problem, each naming file/line/rule/field).
    """
    paths = RulePaths.from_settings(settings)
    try:
        directory = agents.load(paths.agents)
    except agents.AgentsError as err:
        raise RuleSetError(
            [Problem(paths.agents, None, "", "", str(err).split(": ", 1)[-1])]
        ) from None
    hours, queue_hours = _hours(settings)
    queues = set(settings.queue) | {settings.helpdesk.default_queue} if settings.queue else None
    return load_rules(
        paths.files(), directory=directory, queues=queues, hours=hours, queue_hours=queue_hours,
        time_budget=settings.rules.time_budget,
    )


def _hours(settings: Settings) -> tuple[BusinessHours | None, dict[str, BusinessHours]]:
    source = settings.source or Path("helpdesk.toml")
    try:
        default = parse_hours(settings.business_hours) if settings.business_hours else None
    except HoursError as err:
        raise RuleSetError([Problem(source, None, "", "business_hours", str(err))]) from None
    per_queue = {}
    for name, queue in settings.queue.items():
        if queue.business_hours:
            try:
                per_queue[name] = parse_hours(queue.business_hours)
            except HoursError as err:
                field = f"queue.{name}.business_hours"
                raise RuleSetError([Problem(source, None, "", field, str(err))]) from None
    return default, per_queue


def route_queue(settings: Settings, mail: ParsedMail, envelope: Envelope) -> str:
    """The queue chosen by mailbox or address, or "" when none matches."""
    if envelope.route.startswith("imap:"):
        name = envelope.route.removeprefix("imap:")
        for box in settings.imap:
            if box.name == name and box.queue:
                return box.queue
    main_address = settings.helpdesk.address.lower()
    for address in (*mail.delivered_to, *envelope.rcpt_tos, *mail.to, *mail.cc):
        if address.lower() == main_address:
            return ""  # written to the main address first: the default queue
        queue = settings.queue_for_address(address)
        if queue:
            return queue
    return str(envelope.extra.get("queue", "") or "")


def build_context(
    settings: Settings,
    mail: ParsedMail,
    envelope: Envelope,
    *,
    is_reply: bool = False,
    previous_tickets: int = 0,
    arrived_at: datetime | None = None,
    vip: bool = False,
    organisation: str = "",
) -> MailContext:
    """The MailContext the pipeline hands to engine.evaluate."""
    return MailContext(
        mail=mail,
        envelope=envelope,
        is_reply=is_reply,
        previous_tickets=previous_tickets,
        arrived_at=arrived_at,
        default_queue=settings.helpdesk.default_queue,
        routed_queue=route_queue(settings, mail, envelope),
        vip=vip,
        organisation=organisation,
    )
