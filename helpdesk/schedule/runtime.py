"""What the scheduled jobs share: the runtime they work in, a planned step, step
marks (the exactly-once guard) and templated notices through the outbox.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from helpdesk.config import agents
from helpdesk.config.settings import Settings
from helpdesk.mail.tokens import ticket_reply_address
from helpdesk.outgoing import compose as mailout
from helpdesk.schedule.sla import SlaContext
from helpdesk.store import tickets as store
from helpdesk.store.models import Contact, Ticket, TicketStep

ACTOR = "scheduler"


@dataclass
class Runtime:
    """Everything a pass needs, built once per pass (a reloaded directory takes effect
    next pass)."""

    settings: Settings
    engine: Engine
    now: datetime
    sla: SlaContext
    directory: agents.Directory
    on_outbox: Callable[[], None] | None = None
    # a pass at a moment still to come: it shows what it would do and writes nothing,
    # since its writes would carry that moment (see jobs.run_pass)
    simulated: bool = False

    @classmethod
    def build(cls, settings: Settings, engine: Engine, now: datetime,
              on_outbox: Callable[[], None] | None = None, *,
              simulated: bool = False, directory: agents.Directory | None = None,
              ) -> Runtime:
        """`directory`: the daemon's (kept with the rules, last good on a bad edit); a
        one-off pass (`jobs run-due`, tests) reads agents.toml."""
        if directory is None:
            directory = agents.load(agents.path_for(settings))
        return cls(settings, engine, now, SlaContext(settings), directory, on_outbox,
                   simulated)

    def public_id(self, ticket: Ticket) -> str:
        return f"{self.settings.helpdesk.ticket_prefix}-{ticket.id}"

    def team_of(self, ticket: Ticket) -> str:
        return agents.team_of(self.settings, ticket.queue)

    def lead_address(self, ticket: Ticket) -> str:
        lead = self.directory.lead_of(self.team_of(ticket))
        return lead.email if lead else ""

    def agent_address(self, name: str) -> str:
        agent = self.directory.agent(name) if name else None
        return agent.email if agent else ""


@dataclass(frozen=True)
class Step:
    """One thing to do to a ticket at `due_at`; `key` makes it happen once."""

    key: str
    due_at: datetime
    action: str
    data: dict[str, Any] = field(default_factory=dict, compare=False)


def marks(session: Session, ticket_id: int) -> dict[str, TicketStep]:
    rows = session.exec(select(TicketStep).where(TicketStep.ticket_id == ticket_id)).all()
    return {r.key: r for r in rows}


def customer_of(session: Session, ticket: Ticket) -> Contact | None:
    return session.get(Contact, ticket.contact_id) if ticket.contact_id else None


def base_context(rt: Runtime, session: Session, ticket: Ticket) -> dict[str, Any]:
    contact = customer_of(session, ticket)
    hd = rt.settings.helpdesk
    return {"ticket_id": rt.public_id(ticket), "subject": ticket.subject,
            "tagged_subject": mailout.tagged_subject(hd.ticket_prefix, ticket.id or 0,
                                                     ticket.subject),
            "helpdesk_name": hd.name, "queue": ticket.queue, "priority": ticket.priority,
            "status": ticket.status, "assignee": ticket.assignee or "(nobody)",
            "customer": contact.email if contact else "",
            "customer_name": contact.name if contact else ""}


def send(rt: Runtime, session: Session, ticket: Ticket, template: str, to: Sequence[str],
         context: dict[str, Any], *, kind: str, to_customer: bool = False) -> str:
    """Render `template` and queue it; returns the Message-ID (for threading replies)."""
    subject, text, html = mailout.render(rt.settings, template, context, ticket.queue)
    reply_to = None
    if to_customer:
        reply_to = ticket_reply_address(rt.settings, ticket.id)
    msg = mailout.build(rt.settings, to=list(to), subject=subject, text=text, html=html,
                        reply_to=reply_to, automatic=True, id_hint=kind)
    return mailout.queue(session, msg, kind=kind, ticket_id=ticket.id, mail_from="",
                         automatic=True).message_id


def history(session: Session, ticket: Ticket, kind: str, detail: str) -> None:
    store.event(session, ticket, kind, actor=ACTOR, detail=detail)
