"""The queue pages' kept tab counts (web/tab_counts.py, store/changes.py): given again
while nothing they count has changed, counted again at once after any change (the
agent's own on the desk, a message, a scheduler timer falling due with no write at all),
and on PostgreSQL after a transaction that was running when they were counted commits
an id lower than the newest one seen."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.store import db
from helpdesk.store import tickets as store
from helpdesk.store.models import Ticket
from helpdesk.store.queries import QueueCounts, Scope
from helpdesk.web.queues import KEYS
from helpdesk.web.tab_counts import TabCounts
from tests.conftest import MakeSettings
from tests.helpers import engine_for, make_mail, wait_ticket
from tests.sched import SLA, at, customer_reply, make_ticket, run_pass, with_agents
from tests.web_helpers import Desk, sign_in, token

NOW = at("2025-03-03T12:00:00")
PG_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _counts(settings: Settings, kept: TabCounts, now: datetime | None = None) -> QueueCounts:
    with db.snapshot_scope(engine_for(settings)) as session:
        return kept.get(session, Scope("alice"), KEYS, now or clock.now())


def _assign(session: Session, ticket_id: int, name: str) -> None:
    ticket = session.get(Ticket, ticket_id)
    assert ticket is not None
    store.change(session, ticket, "assignee", name, actor=name)


def test_counts_are_kept_until_something_changes(make_settings: MakeSettings) -> None:
    settings = make_settings()
    for minutes in (30, 20):
        make_ticket(settings, NOW - timedelta(minutes=minutes), assignee="")
    clock.freeze(NOW)
    kept = TabCounts()
    first = _counts(settings, kept)
    assert (first.views["unassigned"], first.views["mine"]) == (2, 0)
    # nothing changed: not counted again. On PostgreSQL a transaction of another database
    # (the parallel tests') that ends in the instant a mark is taken can look like one of
    # this database's (changes.py): one recount, the same figures; the next read is kept
    second = _counts(settings, kept)
    assert second is first or (engine_for(settings).dialect.name == "postgresql"
                                and _counts(settings, kept) is second)
    with db.session_scope(engine_for(settings)) as session:
        _assign(session, 1, "alice")
    after = _counts(settings, kept)
    assert (after.views["unassigned"], after.views["mine"]) == (1, 1)
    customer_reply(settings, 2, NOW)  # a message alone is a change too
    again = _counts(settings, kept)
    assert again is not after and again.views == _counts(settings, TabCounts()).views


@SQLITE_ONLY
def test_a_timer_falling_due_moves_a_ticket_to_overdue_without_a_write(
        make_settings: MakeSettings) -> None:
    settings = with_agents(make_settings({"sla": SLA}))
    # normal priority: first response due 8h after it came in, the warning before that
    make_ticket(settings, NOW - timedelta(hours=7), priority="normal", assignee="")
    run_pass(settings, NOW)
    kept = TabCounts()
    before = _counts(settings, kept, NOW)
    assert (before.views["at-risk"], before.views["overdue"]) == (1, 0)
    assert _counts(settings, kept, NOW + timedelta(minutes=59)) is before
    later = _counts(settings, kept, NOW + timedelta(hours=1, seconds=1))  # no pass since
    assert (later.views["at-risk"], later.views["overdue"]) == (0, 1)


@PG_ONLY
def test_a_change_committed_late_with_a_lower_id_is_counted(
        make_settings: MakeSettings) -> None:
    settings = make_settings()
    for minutes in (30, 20):
        make_ticket(settings, NOW - timedelta(minutes=minutes), assignee="")
    clock.freeze(NOW)
    engine, kept = engine_for(settings), TabCounts()
    with Session(engine) as slow:
        _assign(slow, 1, "alice")
        slow.flush()  # its event has an id now, lower than the next one; not committed
        with db.session_scope(engine) as quick:
            ticket = quick.get(Ticket, 2)
            assert ticket is not None
            store.event(quick, ticket, "note", actor="bob")
        drawn = _counts(settings, kept)
        assert drawn.views["mine"] == 0  # the slow one is not committed
        slow.commit()
    # the newest id is the same as when they were counted, but the slow one finished
    assert _counts(settings, kept).views["mine"] == 1


@SQLITE_ONLY
def test_the_agents_own_bulk_assign_shows_in_the_tabs_at_once(
        make_desk: Callable[..., Desk]) -> None:
    desk = make_desk()
    for subject in ("One", "Two"):
        desk.deliver(make_mail(subject=subject))
    for n in (1, 2):
        wait_ticket(desk.settings, n)
    lisa = sign_in(desk, "lisa")

    def tabs() -> tuple[Any, dict[str, int]]:
        page = lisa.get("/desk/queue/unassigned")
        assert page.status_code == 200, page.text
        return page, {t: int(n) for t, n in re.findall(
            r'>([A-Za-z ]+)</a> <span class="count">\((\d+)\)', page.text)}

    page, before = tabs()
    assert (before["Unassigned"], before["My tickets"]) == (2, 0)
    assert tabs()[1] == before
    version = re.search(r'name="version-1" value="([^"]+)"', page.text)
    assert version
    answer = lisa.post("/desk/bulk", data={
        "csrf_token": token(page), "action": "assign", "assignee": "lisa",
        "back": "/desk/queue/unassigned", "ticket": ["1"], "version-1": version[1]})
    assert answer.status_code == 200, answer.text
    after = tabs()[1]
    assert (after["Unassigned"], after["My tickets"]) == (1, 1)
