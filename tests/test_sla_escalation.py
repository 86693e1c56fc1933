"""SLA clocks and escalation, driven by a set clock: warning, breach, once each;
pending time not counted; business hours and holidays shift the due time."""

from __future__ import annotations

import pytest

from helpdesk.config.settings import Settings
from tests.conftest import MakeSettings
from tests.helpers import cli_json, run_cli, ticket_row
from tests.sched import (
    SLA,
    agent_reply,
    at,
    mails,
    make_ticket,
    run_due_cli,
    run_pass,
    set_status,
    step_keys,
    with_agents,
)

BERLIN_HOURS = {"timezone": "Europe/Berlin",
                "week": {"mon": "08:00-18:00", "tue": "08:00-18:00", "wed": "08:00-18:00",
                         "thu": "08:00-18:00", "fri": "08:00-16:00"},
                "holidays": ["2026-12-24", "2026-12-25"]}


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return with_agents(make_settings({"sla": SLA}))


def test_unanswered_ticket_gets_the_warning_then_the_breach_once_each(settings: Settings):
    tid = make_ticket(settings, at("2026-11-30T09:00"))
    assert run_pass(settings, at("2026-11-30T09:44")) == []
    out = run_due_cli(settings, at("2026-11-30T09:45"))
    assert "sla:first_response:0:warn" in out
    warning = mails(settings, "sla-warning")
    assert [w.rcpt_tos for w in warning] == [["alice@staff.test"]]
    assert b"first response" in warning[0].raw
    assert run_pass(settings, at("2026-11-30T09:50")) == []

    out = run_due_cli(settings, at("2026-11-30T10:00"))
    assert "sla:first_response:0:breach" in out
    breach = mails(settings, "sla-breach")
    assert [b.rcpt_tos for b in breach] == [["lisa@staff.test"]]  # the support team's lead
    assert ticket_row(settings, tid).priority == "critical"  # raised one level from high
    assert "0 steps done" in run_due_cli(settings, at("2026-11-30T10:05"))
    assert len(mails(settings, "sla-warning")) == 1
    assert len(mails(settings, "sla-breach")) == 1
    assert step_keys(settings, tid) == ["sla:first_response:0:warn",
                                        "sla:first_response:0:breach"]


def test_an_answered_ticket_is_not_escalated(settings: Settings):
    tid = make_ticket(settings, at("2026-11-30T09:00"))
    agent_reply(settings, tid, at("2026-11-30T09:30"))
    assert run_pass(settings, at("2026-11-30T11:00")) == []
    assert mails(settings) == []


def test_time_in_pending_does_not_count(settings: Settings):
    tid = make_ticket(settings, at("2026-11-30T09:00"), priority="critical")
    agent_reply(settings, tid, at("2026-11-30T09:10"))
    set_status(settings, tid, "open", at("2026-11-30T09:10"))
    set_status(settings, tid, "pending", at("2026-11-30T10:00"))  # 1h counted so far
    assert run_pass(settings, at("2026-11-30T20:00")) == []  # 4h resolution, paused
    set_status(settings, tid, "open", at("2026-12-01T08:00"), actor="carol@customer.test")
    # 1h before pending + 2h from 08:00: 75% of the 4h resolution target is used up
    assert run_pass(settings, at("2026-12-01T09:59")) == []
    assert [d.split()[1] for d in run_pass(settings, at("2026-12-01T10:00"))] == [
        "sla:resolution:0:warn:"]
    assert run_pass(settings, at("2026-12-01T10:59")) == []
    assert [d.split()[1] for d in run_pass(settings, at("2026-12-01T11:00"))] == [
        "sla:resolution:0:breach:"]


def test_business_hours_and_a_holiday_shift_the_due_time(make_settings: MakeSettings):
    settings = with_agents(make_settings({
        "sla": SLA, "escalation": {"warn_at": 0},
        "queue": {"support": {"team": "support", "business_hours": BERLIN_HOURS}}}))
    # Wednesday 23 Dec, 17:30 in Berlin: half an hour left that day, then two holidays,
    # the weekend, and the other half hour on Monday 28 Dec from 08:00
    tid = make_ticket(settings, at("2026-12-23T16:30"))
    shown = cli_json(settings, "tickets", "show", f"HD-{tid}")
    first = next(c for c in shown["sla"] if c["kind"] == "first_response")
    assert first["due"] == "2026-12-28T07:30:00+00:00"
    assert first["breached"] is False
    assert run_pass(settings, at("2026-12-24T12:00")) == []  # without the holiday: due
    assert run_pass(settings, at("2026-12-28T07:29")) == []
    assert [d.split()[1] for d in run_pass(settings, at("2026-12-28T07:30"))] == [
        "sla:first_response:0:breach:"]
    shown = cli_json(settings, "tickets", "show", f"HD-{tid}")
    assert next(c for c in shown["sla"] if c["kind"] == "first_response")["breached"] is True
    human = run_cli(settings, "tickets", "show", f"HD-{tid}").stdout.decode()
    assert "first response" in human and "BREACHED" in human


@pytest.mark.parametrize(("data", "expected"), [
    ({"sla": {"urgent": {"first_response": "1h"}}}, "sla: Value error, 'urgent' is not a priority"),
    ({"sla": {"high": {"first_response": "1x"}}}, "sla.high.first_response: Value error, '1x'"),
    ({"queue": {"vip": {"business_hours": {"week": {"mon": "9-5"}}}}},
     "queue.vip.business_hours: Value error, week.mon"),
    ({"escalation": {"notify": "bob"}}, "escalation.notify: Value error, must be"),
])
def test_bad_scheduler_config_names_the_file_and_key(data: dict, expected: str, tmp_path):
    from helpdesk.config import settings as config
    from helpdesk.errors import ConfigError
    from tests.conftest import write_toml

    path = tmp_path / "helpdesk.toml"
    write_toml(path, data)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(err.value).startswith(f"{path.resolve()}: {expected}") or \
        str(err.value).startswith(f"{path}: {expected}"), str(err.value)
