"""Who has a ticket's reply box open: the desk's collision notice ("Alice is replying").

A row per (ticket, agent) with a short expiry, renewed by the page's heartbeat while
the agent types; in the database, not in memory, so agents signed in to different
daemons see each other. A closed tab simply stops renewing: the row expires, and
expired rows are swept whenever someone marks.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from helpdesk import clock
from helpdesk.store.web_models import WebPresence

# how long an opened reply box counts without a heartbeat (the script renews every
# HEARTBEAT seconds, so a missed beat or two does not make the notice flicker)
LASTS = timedelta(seconds=90)
HEARTBEAT = 30


def mark(session: Session, ticket_id: int, agent: str) -> None:
    """`agent` is replying on the ticket (for LASTS from now)."""
    now = clock.now()
    session.execute(delete(WebPresence).where(col(WebPresence.expires_at) <= now))
    # one statement whatever the race: two tabs of one agent beat at the same moment
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" \
        else sqlite.insert
    stmt = insert(WebPresence).values(ticket_id=ticket_id, agent=agent,
                                      expires_at=now + LASTS)
    session.execute(stmt.on_conflict_do_update(
        index_elements=["ticket_id", "agent"], set_={"expires_at": stmt.excluded.expires_at}))


def clear(session: Session, ticket_id: int, agent: str) -> None:
    """`agent` has sent (or given up) their reply."""
    session.execute(delete(WebPresence).where(col(WebPresence.ticket_id) == ticket_id,
                                              col(WebPresence.agent) == agent))


def replying(session: Session, ticket_id: int, but: str = "") -> list[str]:
    """The agents (names) replying on the ticket now, except `but` (the one asking)."""
    stmt = select(WebPresence.agent).where(
        col(WebPresence.ticket_id) == ticket_id, col(WebPresence.expires_at) > clock.now(),
        col(WebPresence.agent) != but).order_by(col(WebPresence.agent))
    return list(session.exec(stmt))
