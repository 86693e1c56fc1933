"""Helpers for the scheduler tests: tickets built through the store at chosen moments,
and passes run in-process or through `helpdesk jobs run-due --now`."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from typing import Any

from sqlmodel import select

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.schedule import sweep as jobs
from helpdesk.store import db
from helpdesk.store import tickets as store
from helpdesk.store.models import Message, Ticket, TicketStep
from tests.helpers import REPO, engine_for, outbox_rows, run_cli

SLA = {"high": {"first_response": "1h", "resolution": "8h"},
       "critical": {"first_response": "1h", "resolution": "4h"},
       "normal": {"first_response": "8h", "resolution": "3d"}}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def with_agents(settings: Settings) -> Settings:
    """Put the example agents.toml beside the test config (lisa leads support)."""
    assert settings.source is not None
    shutil.copy(REPO / "config" / "agents.toml", settings.source.parent / "agents.toml")
    return settings


def make_ticket(settings: Settings, when: datetime, *, priority: str = "high",
                queue: str = "support", assignee: str = "alice",
                customer: str = "carol@customer.test", subject: str = "Printer on fire") -> int:
    clock.freeze(when)
    db.upgrade(settings.database_url)
    with db.session_scope(engine_for(settings)) as s:
        contact = store.contact_for(s, customer, "Carol")
        t = store.create_ticket(s, subject=subject, contact=contact, queue=queue)
        store.event(s, t, "created", actor=customer)
        t.priority, t.assignee = priority, assignee
        s.add(Message(ticket_id=t.id, direction="in", dedupe_key=f"in-{t.id}-{when}",
                      from_addr=customer, subject=subject, created_at=when))
        return int(t.id)  # type: ignore[arg-type]


def set_status(settings: Settings, ticket_id: int, status: str, when: datetime,
               actor: str = "alice") -> None:
    clock.freeze(when)
    with db.session_scope(engine_for(settings)) as s:
        t = s.get(Ticket, ticket_id)
        store.change(s, t, "status", status, actor=actor)
        if status == "resolved":
            t.resolved_at = when
        if status == "closed":
            t.closed_at = when


def agent_reply(settings: Settings, ticket_id: int, when: datetime) -> None:
    clock.freeze(when)
    with db.session_scope(engine_for(settings)) as s:
        t = s.get(Ticket, ticket_id)
        t.first_response_at = t.first_response_at or when
        t.updated_at = when
        s.add(Message(ticket_id=ticket_id, direction="out", dedupe_key=f"out-{ticket_id}-{when}",
                      from_addr="alice@staff.test", created_at=when))


def customer_reply(settings: Settings, ticket_id: int, when: datetime) -> None:
    clock.freeze(when)
    with db.session_scope(engine_for(settings)) as s:
        t = s.get(Ticket, ticket_id)
        t.updated_at = when
        s.add(Message(ticket_id=ticket_id, direction="in", dedupe_key=f"in-{ticket_id}-{when}",
                      from_addr="carol@customer.test", created_at=when))
        if t.status == "pending":
            store.change(s, t, "status", "open", actor="carol@customer.test")


def run_pass(settings: Settings, when: datetime) -> list[str]:
    clock.freeze(when)
    db.upgrade(settings.database_url)
    return jobs.run_pass(settings, engine_for(settings), when).done


def run_due_cli(settings: Settings, when: datetime) -> str:
    result = run_cli(settings, "jobs", "run-due", "--now", when.isoformat())
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def step_keys(settings: Settings, ticket_id: int) -> list[str]:
    with db.session_scope(engine_for(settings)) as s:
        rows = s.exec(select(TicketStep).where(TicketStep.ticket_id == ticket_id)
                      .order_by(TicketStep.id)).all()
        return [r.key for r in rows]


def mails(settings: Settings, kind: str | None = None) -> list[Any]:
    return [r for r in outbox_rows(settings) if kind is None or r.kind == kind]
