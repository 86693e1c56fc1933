"""The rules stage: admin files under config/ -> a Decision for each incoming mail
(loader, engine, conditions, actions) and the choice of an assignee (assign).

The rules never touch the database: what they need to know about the store
(is this a reply, how many tickets the customer has) comes in a MailContext, and
assignments that depend on the store (round-robin, least-loaded) leave as an
AssignRequest for the store step to resolve.

May import: the base, the spool's Envelope and mail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from helpdesk.mail.parse import ParsedMail
from helpdesk.spool import Envelope


@dataclass(frozen=True)
class MailContext:
    """Everything a rule may look at."""

    mail: ParsedMail
    envelope: Envelope
    is_reply: bool = False
    previous_tickets: int = 0
    arrived_at: datetime | None = None
    default_queue: str = "support"
    # the queue chosen by address or mailbox before any rule ran
    routed_queue: str = ""
    # the sender as a customer (store.contacts_ops): flagged VIP, their organisation
    vip: bool = False
    organisation: str = ""


@dataclass(frozen=True)
class AssignRequest:
    """Assign to one agent, or to a team's member chosen by a strategy."""

    agent: str = ""
    team: str = ""
    strategy: str = "round_robin"  # or "least_loaded"
    # the team's agent names in agents.toml order, for helpdesk.rules.assign.pick()
    members: tuple[str, ...] = ()

    def describe(self) -> str:
        return self.agent or f"team:{self.team} ({self.strategy})"


@dataclass(frozen=True)
class RuleHit:
    """One field set by one rule, kept in the ticket's history."""

    rule: str
    field: str
    value: str


@dataclass(frozen=True)
class RuleTimeout:
    """A rule whose regex ran out of time on this mail: it was not applied."""

    rule: str
    pattern: str
    budget: float  # the per-mail budget in seconds, to show why

    def describe(self) -> str:
        return (f"regex {self.pattern!r} ran out of time (the rules may spend "
                f"{self.budget:g}s per mail); rule not applied")


@dataclass(frozen=True)
class Decision:
    """What the rules decided for one mail.

    For a new ticket `queue` is always filled (a rule's, else the routed queue,
    else the default). For a follow-up (ctx.is_reply) only the fields that rules
    marked `apply_to = "followups"` or `"all"` set are filled; empty means "leave
    the ticket as it is". `spam` mails are stored but neither acknowledged nor
    notified, whatever `ack_template` says.
    """

    category: str = ""
    priority: str = ""
    queue: str = ""
    tags: tuple[str, ...] = ()
    assign: AssignRequest | None = None
    spam: bool = False
    # None: the default acknowledgement; "": send none; other: template name
    ack_template: str | None = None
    hits: tuple[RuleHit, ...] = ()
    matched: tuple[str, ...] = field(default=())
    # the rule whose `stop = true` ended evaluation, if any
    stopped_by: str = ""
    # rules skipped because their regex ran out of time (kept in the ticket's history)
    timeouts: tuple[RuleTimeout, ...] = ()
