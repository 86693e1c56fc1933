"""Stale tickets: pending without a customer reply -> reminder -> resolved with a note;
resolved long enough -> closed."""

from __future__ import annotations

import pytest

from helpdesk.config.settings import Settings
from helpdesk.store.db import session_scope
from helpdesk.store.models import Review, Ticket
from tests.conftest import MakeSettings
from tests.helpers import all_tickets, engine_for, ticket_row
from tests.sched import at, customer_reply, mails, make_ticket, run_pass, set_status


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings({"stale": {"pending_remind": "3d", "pending_resolve": "4d",
                                    "resolved_close": "7d"}})


def test_pending_ticket_is_reminded_then_resolved_then_closed(settings: Settings):
    tid = make_ticket(settings, at("2026-11-30T09:00"))
    set_status(settings, tid, "pending", at("2026-11-30T10:00"))
    assert run_pass(settings, at("2026-12-03T09:59")) == []
    assert run_pass(settings, at("2026-12-03T10:00")) == [
        f"HD-{tid} stale:remind:20261130T100000: reminded carol@customer.test"]
    assert [m.rcpt_tos for m in mails(settings, "stale-reminder")] == [["carol@customer.test"]]
    assert run_pass(settings, at("2026-12-07T09:59")) == []
    done = run_pass(settings, at("2026-12-07T10:00"))
    assert done == [f"HD-{tid} stale:resolve:20261130T100000: resolved: no reply from the "
                    "customer after the reminder"]
    assert ticket_row(settings, tid).status == "resolved"
    assert run_pass(settings, at("2026-12-14T09:59")) == []
    assert run_pass(settings, at("2026-12-14T10:00")) == [
        f"HD-{tid} stale:close:20261207T100000: closed"]
    t = ticket_row(settings, tid)
    assert (t.status, t.closed_at) == ("closed", at("2026-12-14T10:00"))
    history = [(e["actor"], e["kind"], e["new"]) for e in all_tickets(settings)[0]["events"]]
    assert ("scheduler", "change", "resolved") in history
    assert ("scheduler", "change", "closed") in history
    assert len(mails(settings, "stale-reminder")) == 1


def test_a_customer_reply_restarts_the_wait(settings: Settings):
    tid = make_ticket(settings, at("2026-11-30T09:00"))
    set_status(settings, tid, "pending", at("2026-11-30T10:00"))
    customer_reply(settings, tid, at("2026-12-02T10:00"))  # back to open
    set_status(settings, tid, "pending", at("2026-12-02T11:00"))
    assert run_pass(settings, at("2026-12-05T10:59")) == []
    assert len(run_pass(settings, at("2026-12-05T11:00"))) == 1


def test_a_pending_ticket_whose_resolution_awaits_review_is_reminded_but_not_resolved(
        settings: Settings):
    tid = make_ticket(settings, at("2026-11-30T09:00"))
    set_status(settings, tid, "pending", at("2026-11-30T10:00"))
    with session_scope(engine_for(settings)) as session:
        session.add(Review(ticket_id=tid, agent="alice", target_status="resolved"))
    assert len(run_pass(settings, at("2026-12-03T10:00"))) == 1  # the reminder
    assert run_pass(settings, at("2026-12-20T10:00")) == []
    assert ticket_row(settings, tid).status == "pending"


def test_a_web_request_never_confirmed_is_closed_quietly_and_gets_no_survey(
        make_settings: MakeSettings):
    """A form's request from an address that never followed its confirmation link is
    closed after [web_form] unconfirmed_close; nobody is mailed, not even a survey."""
    settings = make_settings({"web_form": {"unconfirmed_close": "14d"},
                              "survey": {"enabled": True, "delay": "1h"}})
    tid = make_ticket(settings, at("2026-11-01T09:00"))
    confirmed = make_ticket(settings, at("2026-11-01T09:00"), customer="dora@customer.test")
    with session_scope(engine_for(settings)) as session:
        session.get(Ticket, tid).unconfirmed = True  # type: ignore[union-attr]
    assert run_pass(settings, at("2026-11-15T08:59")) == []
    assert run_pass(settings, at("2026-11-15T09:00")) == [
        f"HD-{tid} stale:unconfirmed:20261101T090000: closed: the request from the web "
        "form was never confirmed"]
    t = ticket_row(settings, tid)
    assert (t.status, t.closed_at) == ("closed", at("2026-11-15T09:00"))
    assert ticket_row(settings, confirmed).status != "closed"  # a confirmed one: left alone
    assert run_pass(settings, at("2026-11-16T09:00")) == [
        f"HD-{tid} survey:20261115T090000: no survey: unconfirmed"]
    assert mails(settings) == []
    kinds = [e["kind"] for e in all_tickets(settings)[0]["events"]]
    assert "unconfirmed-expired" in kinds


def test_an_unconfirmed_request_is_kept_when_expiry_is_off(make_settings: MakeSettings):
    settings = make_settings({"web_form": {"unconfirmed_close": 0}})
    tid = make_ticket(settings, at("2026-11-01T09:00"))
    with session_scope(engine_for(settings)) as session:
        session.get(Ticket, tid).unconfirmed = True  # type: ignore[union-attr]
    assert run_pass(settings, at("2027-11-01T09:00")) == []
    assert ticket_row(settings, tid).status != "closed"
