"""SLA steps: a warning to the assignee at [escalation] warn_at of the SLA, and at the
breach a notice to the team lead (or an address), priority one level up and,
optionally, the ticket handed to the escalation team.

Each step runs once per ticket, SLA and cycle (its TicketStep key), is recorded
in the ticket's history and mailed from a template (sla_warning, sla_breach).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from helpdesk.config.priority import PRIORITIES
from helpdesk.rules import assign
from helpdesk.schedule import sla
from helpdesk.schedule.runtime import ACTOR, Runtime, Step, base_context, history, send
from helpdesk.store import queries
from helpdesk.store import tickets as store
from helpdesk.store.models import Ticket


def plan(rt: Runtime, session: Session, ticket: Ticket, done: set[str]) -> list[Step]:
    steps: list[Step] = []
    for c in sla.clocks(session, rt.sla, ticket):
        breach_key = sla.step_key(c, "breach")
        data = {"kind": c.kind, "due": c.due_at}
        if c.met_at is not None:
            if c.breached(rt.now) and breach_key not in done:
                # met late while nobody looked (downtime): record it, notify nobody
                steps.append(Step(breach_key, c.met_at, "breach-late", data))
            continue
        if c.warn_at is not None and c.warn_at != c.due_at:
            steps.append(Step(sla.step_key(c, "warn"), c.warn_at, "warn", data))
        if c.due_at is not None:
            steps.append(Step(breach_key, c.due_at, "breach", data))
    return steps


def _when(rt: Runtime, at: datetime | None) -> str:
    return at.isoformat(timespec="minutes") if at else "-"


def warn(rt: Runtime, session: Session, ticket: Ticket, step: Step) -> str:
    label = sla.LABELS[step.data["kind"]]
    to = rt.agent_address(ticket.assignee) or rt.lead_address(ticket) or _notify_address(rt)
    context = {**base_context(rt, session, ticket), "sla": label,
               "due": _when(rt, step.data["due"]),
               "share": f"{round(rt.settings.escalation.warn_at * 100)}%"}
    if to:
        send(rt, session, ticket, "sla_warning", [to], context, kind="sla-warning")
    detail = f"{label} due {_when(rt, step.data['due'])}: warned {to or 'nobody (no address)'}"
    history(session, ticket, "sla-warning", detail)
    return detail


def breach(rt: Runtime, session: Session, ticket: Ticket, step: Step) -> str:
    label = sla.LABELS[step.data["kind"]]
    cfg = rt.settings.escalation
    to = _notify_address(rt) if cfg.notify != "lead" else rt.lead_address(ticket)
    context = {**base_context(rt, session, ticket), "sla": label,
               "due": _when(rt, step.data["due"])}
    changes = []
    if cfg.raise_priority and ticket.priority in PRIORITIES[:-1]:
        higher = PRIORITIES[PRIORITIES.index(ticket.priority) + 1]
        store.change(session, ticket, "priority", higher, actor=ACTOR,
                     detail=f"SLA breached: {label}")
        changes.append(f"priority {higher}")
    if cfg.reassign:
        name = _escalation_agent(rt, session, ticket)
        if name and store.change(session, ticket, "assignee", name, actor=ACTOR,
                                 detail=f"SLA breached: {label}"):
            changes.append(f"assigned to {name}")
    context["changes"] = ", ".join(changes)
    if to:
        send(rt, session, ticket, "sla_breach", [to], context, kind="sla-breach")
    detail = (f"{label} breached (due {_when(rt, step.data['due'])}): notified "
              f"{to or 'nobody (no address)'}" + (f"; {context['changes']}" if changes else ""))
    history(session, ticket, "sla-breach", detail)
    return detail


def breach_late(rt: Runtime, session: Session, ticket: Ticket, step: Step) -> str:
    detail = (f"{sla.LABELS[step.data['kind']]} breached (due {_when(rt, step.data['due'])}), "
              "met before the scheduler looked")
    history(session, ticket, "sla-breach", detail)
    return detail


def _notify_address(rt: Runtime) -> str:
    notify = rt.settings.escalation.notify
    return notify if "@" in notify else ""


def _escalation_agent(rt: Runtime, session: Session, ticket: Ticket) -> str:
    """The least loaded member of the escalation team."""
    team = rt.settings.escalation.team
    if not team:
        own = rt.directory.team(rt.team_of(ticket))
        team = own.escalation if own else ""
    members = list(rt.directory.team_members(team)) if team else []
    if not members:
        return ""
    return assign.pick("least_loaded", members,
                       open_counts=queries.open_ticket_counts(session, members))


ACTIONS = {"warn": warn, "breach": breach, "breach-late": breach_late}
