"""queries.queue_names, the lead's choice of queues on the search page, read by a
walk of the queue index from one name to the next: the same names as SELECT DISTINCT,
on SQLite and PostgreSQL, none in an empty database."""

from __future__ import annotations

from sqlmodel import select

from helpdesk.store import db, queries
from helpdesk.store.models import Ticket
from tests.conftest import MakeSettings
from tests.helpers import engine_for
from tests.sched import at, make_ticket


def test_queue_names_are_every_queue_a_ticket_is_in(make_settings: MakeSettings) -> None:
    settings = make_settings()
    db.upgrade(settings.database_url)
    with db.session_scope(engine_for(settings)) as s:
        assert queries.queue_names(s) == []
    for n, queue in enumerate(["support", "zeta", "billing", "support", "Alpha", "zeta"]):
        make_ticket(settings, at("2026-03-02T09:00:00"), queue=queue, subject=f"T{n}")
    with db.session_scope(engine_for(settings)) as s:
        distinct = sorted(s.exec(select(Ticket.queue).distinct()).all())
        names = queries.queue_names(s)
        assert sorted(names) == distinct == sorted(["support", "zeta", "billing", "Alpha"])
