"""Post-mortems: cause, fix and prevention of a ticket at or above [kb]
postmortem_priority, kept with the ticket (one per ticket; a later one replaces it).

A ticket needs one once it is resolved or closed; until it has one it is an open
post-mortem, counted by `helpdesk stats` and listed on the desk's KB page, whose form
starts from the template kb/postmortem.txt.j2 (overridable like every template). The
same text by mail (`#postmortem` with the filled-in template as the reply) is read by
`parse`: "Cause:", "Fix:" and "Prevention:" start the parts.
"""

from __future__ import annotations

import re

from sqlalchemy import func
from sqlmodel import Session, col, select

from helpdesk import clock
from helpdesk.config.priority import PRIORITIES
from helpdesk.config.settings import Settings
from helpdesk.outgoing import compose as mailout
from helpdesk.store import tickets as store
from helpdesk.store.kb_models import KbPostMortem
from helpdesk.store.models import Status, Ticket

PARTS = ("cause", "fix", "prevention")
_HEADING = re.compile(r"^\s*(cause|fix|prevention)\s*:\s*", re.I | re.M)
_DONE = (Status.RESOLVED.value, Status.CLOSED.value)


def priorities_needing(settings: Settings) -> list[str]:
    """The priorities whose tickets need a post-mortem ([] when off)."""
    wanted = settings.kb.postmortem_priority
    return list(PRIORITIES[PRIORITIES.index(wanted):]) if wanted else []


def needs(settings: Settings, ticket: Ticket) -> bool:
    return ticket.priority in priorities_needing(settings)


def template(settings: Settings, ticket: Ticket) -> str:
    env = mailout.templates(settings).environment()
    return env.get_template("kb/postmortem.txt.j2").render(
        subject=ticket.subject, ticket_id=f"{settings.helpdesk.ticket_prefix}-{ticket.id}",
        priority=ticket.priority)


def parse(text: str) -> dict[str, str]:
    """The parts of a filled-in template; text before any heading is the cause."""
    parts = dict.fromkeys(PARTS, "")
    pieces = _HEADING.split(text)
    if pieces[0].strip():
        parts["cause"] = pieces[0].strip()
    for name, body in zip(pieces[1::2], pieces[2::2], strict=True):
        parts[name.lower()] = body.strip()
    return parts


def keep(session: Session, ticket: Ticket, parts: dict[str, str], *, by: str) -> KbPostMortem:
    """Store (or replace) the ticket's post-mortem, recorded in its history."""
    row = session.get(KbPostMortem, ticket.id) or KbPostMortem(ticket_id=int(ticket.id or 0))
    row.cause, row.fix, row.prevention = (parts.get(p, "").strip() for p in PARTS)
    row.written_by, row.at = by, clock.now()
    session.add(row)
    store.event(session, ticket, "postmortem", actor=by, detail="post-mortem kept")
    return row


def of(session: Session, ticket_id: int) -> KbPostMortem | None:
    return session.get(KbPostMortem, ticket_id)


def _open(settings: Settings):  # type: ignore[no-untyped-def]
    return (col(Ticket.priority).in_(priorities_needing(settings)),
            col(Ticket.status).in_(_DONE),
            col(Ticket.id).not_in(select(KbPostMortem.ticket_id)))


def open_tickets(session: Session, settings: Settings, limit: int = 100) -> list[Ticket]:
    """Resolved or closed tickets that need a post-mortem and have none, newest first."""
    if not priorities_needing(settings):
        return []
    return list(session.exec(select(Ticket).where(*_open(settings))
                             .order_by(col(Ticket.id).desc()).limit(limit)).all())


def open_count(session: Session, settings: Settings) -> int:
    if not priorities_needing(settings):
        return 0
    return int(session.exec(select(func.count()).select_from(Ticket)
                            .where(*_open(settings))).one())


def ticket_box(session: Session, settings: Settings, ticket: Ticket) -> dict[str, object]:
    """What the desk's ticket page shows of the knowledge base: the ticket's articles,
    and whether it asks for a post-mortem (resolved, important enough, none kept yet)."""
    from helpdesk.store.kb_models import KbArticle

    number = int(ticket.id or 0)
    drafted = list(session.exec(select(KbArticle).where(KbArticle.ticket_id == number)
                                .order_by(KbArticle.id)).all())
    kept = of(session, number)
    return {"articles": drafted, "postmortem": kept,
            "asks_postmortem": kept is None and needs(settings, ticket)
            and ticket.status in _DONE}
