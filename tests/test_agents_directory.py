"""One directory of agents for the pipeline and the scheduler: reloaded with the rules,
the last good one kept on a bad edit (for the scheduler too), and one rule for leads."""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import Callable

import pytest

from helpdesk import clock
from helpdesk.config import agents
from helpdesk.schedule.runtime import Runtime
from helpdesk.store.models import Ticket
from tests.agents_toml import agent, agents_toml, team
from tests.conftest import MakeSettings
from tests.helpers import DaemonThread, wait_until
from tests.sched import SLA, at, mails, make_ticket, step_keys, with_agents

BOTH_STEPS = ["sla:first_response:0:warn", "sla:first_response:0:breach"]


def test_a_bad_agents_edit_keeps_the_last_good_directory_for_the_scheduler(
        make_settings: MakeSettings, start_daemon: Callable[..., DaemonThread],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    settings = with_agents(make_settings({
        "sla": SLA, "scheduler": {"interval": "1s"},
        "helpdesk": {"admins": ["admin@example.test"]}}))
    assert settings.source is not None
    tid = make_ticket(settings, at("2026-11-30T09:00"))
    clock.freeze(at("2026-11-30T09:10"))
    daemon = start_daemon(settings).daemon
    runner = daemon.scheduler.runner
    wait_until(lambda: runner.passes >= 1, what="the start-up pass")

    (settings.source.parent / "agents.toml").write_text('[[agent]\nname = "lisa"\n')
    daemon.reload()  # what SIGHUP does
    assert daemon.rules is not None and daemon.rules.last_error is not None
    assert "agents.toml" in str(daemon.rules.last_error)

    # warning and breach fall due: done with the last good agents (the breach to the
    # lead); within the hour, so the file watcher's reload of the same error alerts nobody
    clock.freeze(at("2026-11-30T10:05"))
    wait_until(lambda: step_keys(settings, tid) == BOTH_STEPS, what="the steps, done")
    passes = runner.passes
    wait_until(lambda: runner.passes >= passes + 2, what="two more passes")
    assert [m.rcpt_tos for m in mails(settings, "sla-warning")] == [["alice@staff.test"]]
    assert [m.rcpt_tos for m in mails(settings, "sla-breach")] == [["lisa@staff.test"]]
    alerts = mails(settings, "alert")
    assert len(alerts) == 1  # once, however many passes
    alert = email.message_from_bytes(alerts[0].raw, policy=email.policy.default)
    assert "agents.toml" in alert.get_content()  # type: ignore[attr-defined]
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR
                and r.name.startswith(("apscheduler", "helpdesk.schedule"))]
    assert failures == []


LEAD_BY_ROLE = agents_toml(agent("alice", "support"), agent("lisa", "support", role="lead"),
                           agent("omar", "ops"), team("ops", lead="omar"))


def test_one_lead_rule_for_notifications_and_the_scheduler(make_settings: MakeSettings,
                                                             tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A team's named lead; failing that, its member with role lead: notify's rule, which
    the scheduler (escalations, surveys) now follows too."""
    settings = make_settings({"queue": {"billing": {"team": "ops"}}})
    path = tmp_path / "lead.toml"
    path.write_text(LEAD_BY_ROLE)
    directory = agents.load(path)
    assert directory.lead_of("ops").name == "omar"  # type: ignore[union-attr]
    assert directory.lead_of("support").name == "lisa"  # type: ignore[union-attr]
    assert directory.lead_of("nobody") is None
    rt = Runtime.build(settings, None, at("2026-11-30T09:00"), directory=directory)  # type: ignore[arg-type]
    assert rt.lead_address(Ticket(queue="support", subject="x")) == "lisa@staff.test"
    assert rt.lead_address(Ticket(queue="billing", subject="x")) == "omar@staff.test"
    assert agents.team_of(settings, "billing") == "ops"
    assert agents.team_of(settings, "support") == "support"
