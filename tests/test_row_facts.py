"""store.row_facts, what a queue page shows beside each ticket read in one statement,
says exactly what the per-ticket reads say: the version a stale form is refused by
(queries.ticket_version) and the SLA clocks' inputs (schedule.sla.status_changes,
message_times), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from helpdesk.config.settings import Settings
from helpdesk.schedule import sla
from helpdesk.store import db, queries, row_facts
from helpdesk.store.models import Message
from tests.conftest import MakeSettings
from tests.helpers import engine_for
from tests.sched import agent_reply, at, customer_reply, make_ticket, set_status

NOW = at("2026-03-02T09:00:00")


def _tickets(settings: Settings) -> list[int]:
    """Two tickets with history (status changes, two at the same moment, replies both
    ways, an internal note) and one with nothing but its first mail."""
    one = make_ticket(settings, NOW)
    two = make_ticket(settings, NOW + timedelta(minutes=1), subject="Two")
    bare = make_ticket(settings, NOW + timedelta(minutes=2), subject="Bare")
    agent_reply(settings, one, NOW + timedelta(minutes=10))
    set_status(settings, one, "pending", NOW + timedelta(minutes=11))
    customer_reply(settings, one, NOW + timedelta(minutes=20))  # pending -> open
    set_status(settings, two, "pending", NOW + timedelta(minutes=30))
    set_status(settings, two, "open", NOW + timedelta(minutes=30))  # a tie on `at`
    with db.session_scope(engine_for(settings)) as s:
        s.add(Message(ticket_id=two, direction="in", internal=True, dedupe_key="note-2",
                      from_addr="alice@staff.test", created_at=NOW + timedelta(minutes=31)))
    agent_reply(settings, two, NOW + timedelta(minutes=5))  # created after, dated before
    return [one, two, bare]


def test_a_page_of_facts_matches_the_per_ticket_reads(make_settings: MakeSettings) -> None:
    settings = make_settings()
    ids = _tickets(settings)
    missing = max(ids) + 100
    with db.session_scope(engine_for(settings)) as s:
        facts = row_facts.row_facts(s, [*ids, missing, ids[0]])
        assert set(facts.versions) == {*ids, missing}
        for i in ids:
            assert facts.versions[i] == queries.ticket_version(s, i)
            assert facts.changes[i] == sla.status_changes(s, i)
            assert facts.times[i] == sla.message_times(s, i)
        assert facts.versions[missing] == "0.0" == queries.ticket_version(s, missing)
        assert facts.changes[missing] == [] and facts.times[missing] == []
        # the history the tickets were given is there (not three empty lists)
        assert [new for _, _, new in facts.changes[ids[1]]] == ["pending", "open"]
        assert len(facts.times[ids[0]]) == 3 and len(facts.times[ids[1]]) == 2
        assert row_facts.row_facts(s, []).versions == {}
