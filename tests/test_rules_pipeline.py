"""Routing rules applied by the running daemon: fields set, history kept, spam not acked."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpdesk.config.settings import Settings
from helpdesk.pipeline import Pipeline
from helpdesk.rules.holder import RulesHolder
from helpdesk.spool import Envelope, Spool
from helpdesk.store import db
from tests.agent_desk import body, msgid, reply_to, wait_mails_to
from tests.conftest import MakeSettings
from tests.helpers import (
    DaemonThread,
    RelaySink,
    all_tickets,
    engine_for,
    make_mail,
    outbox_rows,
    run_cli,
    send,
    wait_drained,
    wait_ticket,
    wait_until,
)
from tests.rules_mail import ISSUE_EXAMPLE

RULES = ISSUE_EXAMPLE + """
[[rule]]
name = "Lawyers"
when.body = { contains = "lawyer" }
assign = { agent = "bob" }
apply_to = "followups"
"""

AGENTS = """
[[agent]]
name = "alice"
email = "alice@staff.test"
teams = ["support", "ops"]

[[agent]]
name = "bob"
email = "bob@staff.test"
teams = ["ops"]

[[agent]]
name = "lisa"
email = "lisa@staff.test"
teams = ["support"]
role = "lead"

[[team]]
name = "support"
lead = "lisa"
"""


@pytest.fixture
def routed(desk_settings, start_daemon):  # type: ignore[no-untyped-def]
    settings = desk_settings(AGENTS, RULES, helpdesk={"admins": ["admin@example.test"]})
    return settings, start_daemon(settings)


def test_an_invoice_question_lands_in_billing_and_the_history_names_the_rule(
    routed: tuple[Settings, DaemonThread],
) -> None:
    settings, daemon = routed
    send(daemon.port, make_mail(subject="Refund for invoice 42"))
    ticket = wait_ticket(settings, 1)
    assert (ticket["category"], ticket["queue"]) == ("billing", "billing")
    changes = {e["field"]: e["actor"] for e in ticket["events"] if e["kind"] == "change"}
    assert changes["category"] == "rule:Billing by keyword"
    assert changes["queue"] == "rule:Billing by keyword"


def test_a_vip_outage_is_critical_and_assigned_round_robin_in_ops(
    routed: tuple[Settings, DaemonThread],
) -> None:
    settings, daemon = routed
    for i in range(4):
        send(daemon.port, make_mail(sender=f"ceo{i}@bigcorp.test", subject=f"site down {i}"),
             sender=f"ceo{i}@bigcorp.test")
        wait_ticket(settings, i + 1)
    tickets = all_tickets(settings)
    assert {t["priority"] for t in tickets} == {"critical"}
    assert [t["assignee"] for t in tickets] == ["alice", "bob", "alice", "bob"]
    assignment = next(e for e in tickets[0]["events"] if e["field"] == "assignee")
    assert assignment["actor"] == "rule:Outage reports"


def test_a_rule_assigning_a_follow_up_tells_the_new_assignee_once(
    routed: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = routed
    send(daemon.port, make_mail(subject="Printer on fire"))
    ack = wait_mails_to(relay, "carol@customer.test", 1)[0]

    def follow_up(text: str) -> None:
        send(daemon.port, make_mail(to=reply_to(ack), subject="Re: [HD-1] Printer on fire",
                                    in_reply_to=f"<{msgid(ack)}>", body=text),
             rcpts=[reply_to(ack)])

    follow_up("My lawyer will call you.")
    assigned = wait_mails_to(relay, "bob@staff.test", 1)[0]
    assert assigned["Subject"].startswith("Assigned to you: [HD-1]")
    assert "My lawyer will call you." in body(assigned)
    t = wait_ticket(settings, 1, lambda t: t["assignee"] == "bob", "assigned to bob")
    change = next(e for e in t["events"] if e["field"] == "assignee")
    assert change["actor"] == "rule:Lawyers"

    # the rule matches again but changes nothing: bob hears of the reply, once
    follow_up("My lawyer is still waiting.")
    wait_ticket(settings, 1, lambda t: len(t["messages"]) == 3, "the second follow-up")
    assert [r.kind for r in outbox_rows(settings) if r.agent == "bob"] == [
        "notify-assigned", "notify-reply"]


def test_a_newsletter_is_stored_as_spam_without_an_acknowledgement(
    routed: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = routed
    send(daemon.port, make_mail(subject="Our weekly news",
                                headers={"List-Id": "<news.vendor.test>"}))
    ticket = wait_ticket(settings, 1)
    assert ticket["spam"] is True
    wait_drained(settings)  # an ack, had one been queued, would be out by now
    assert relay.received == []


def test_a_bad_rules_edit_keeps_the_last_good_rules_running_and_tells_the_admins(
    routed: tuple[Settings, DaemonThread], tmp_path: Path, relay: RelaySink,
) -> None:
    settings, daemon = routed
    rules = tmp_path / "config" / "rules.toml"
    rules.write_text(RULES + '\n[[rule]]\nname = "Broken"\nwhen.subject = { regex = "(" }\n')
    daemon.daemon.reload()  # what SIGHUP does
    assert daemon.daemon.rules is not None and daemon.daemon.rules.last_error is not None
    assert "Broken" in str(daemon.daemon.rules.last_error)
    send(daemon.port, make_mail(subject="billing question"))
    assert wait_ticket(settings, 1)["queue"] == "billing"
    alert = next(r for r in relay.wait_for(2) if r.rcpt_tos == ["admin@example.test"])
    assert "rules file refused" in alert.message["Subject"]
    assert "Broken" in alert.message.get_content()


# each pattern backtracks without end on a run of x's that is not followed by its y
EVIL_RULES = "".join(
    f'[[rule]]\nname = "Trace {i}"\nwhen.header."X-Trace" = {{ regex = "(x|xx)+y{i}" }}\n'
    'tags = ["traced"]\n\n' for i in range(5)
) + '[[rule]]\nname = "Every mail"\ntags = ["seen"]\n'


def test_catastrophic_regexes_over_200_headers_cost_one_budget_and_are_recorded(
    make_settings: MakeSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "rules.toml").write_text(EVIL_RULES)
    settings = make_settings({"rules": {"time_budget": 0.3}})
    db.upgrade(settings.database_url)
    spool = Spool(settings.data_dir / "spool")
    pipeline = Pipeline(settings, engine_for(settings), spool,
                        router=RulesHolder.from_settings(settings))
    mail = make_mail(subject="Build log attached")
    for _ in range(200):
        mail["X-Trace"] = "y0 y1 y2 y3 y4 " + "x" * 60
    spool.put(mail.as_bytes(), Envelope(route="smtp", rcpt_tos=("support@example.test",)))

    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        [outcome] = pipeline.drain()
    elapsed = time.monotonic() - started

    assert outcome.kind == "stored"
    # a timeout per search would be 5 rules x 200 headers x 50 ms = 50 s
    assert elapsed < 3.0, f"the rules held the pipeline {elapsed:.1f}s"
    [ticket] = all_tickets(settings)
    assert ticket["tags"] == ["seen"]  # the rules after the slow ones still run
    timeouts = [e for e in ticket["events"] if e["kind"] == "rule-timeout"]
    assert [e["actor"] for e in timeouts] == [f"rule:Trace {i}" for i in range(5)]
    assert "'(x|xx)+y0'" in timeouts[0]["detail"]
    assert "not applied" in timeouts[0]["detail"]
    logged = [r.getMessage() for r in caplog.records if "timed out" in r.getMessage()]
    assert len(logged) == 5 and "Trace 0" in logged[0]


def _healthz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_refused_rules_edit_needs_attention_and_each_new_error_is_mailed(
    routed: tuple[Settings, DaemonThread], tmp_path: Path, relay: RelaySink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings, daemon = routed
    rules = tmp_path / "config" / "rules.toml"
    port = daemon.daemon.http.port  # type: ignore[union-attr]

    def alerts() -> list:
        return [r for r in relay.received if r.rcpt_tos == ["admin@example.test"]]

    def refusals() -> int:
        return sum("rules not reloaded" in r.getMessage() for r in caplog.records)

    assert run_cli(settings, "status").returncode == 0
    assert _healthz(port)[0] == 200

    # an edit the daemon refuses: it keeps the old rules, but a restart would fail
    rules.write_text(RULES + '\n[[rule]]\nname = "Broken"\nwhen.subject = { regex = "(" }\n'
                     'tags = ["x"]\n')
    [first] = wait_until(alerts, what="an alert about the refused edit")
    assert "rules file refused" in first.message["Subject"]
    assert "rule 'Broken'" in first.message.get_content()
    status = run_cli(settings, "status")
    out = status.stdout.decode()
    assert status.returncode == 1, out
    assert "REFUSED" in out and "rule 'Broken'" in out
    code, health = _healthz(port)
    assert code == 503 and health["status"] == "degraded"
    assert "rule 'Broken'" in health["rules"]["error"]
    assert health["database"]["ok"] and health["smtp"]["ok"]  # mail still flows

    # a second, different mistake is news: a second alert within the hour
    rules.write_text(RULES + '\n[[rule]]\nname = "Urgent"\nset = { priority = "urgent" }\n')
    wait_until(lambda: len(alerts()) == 2, what="a second alert")
    assert "'urgent' is not one of" in alerts()[1].message.get_content()
    assert "rule 'Urgent'" in _healthz(port)[1]["rules"]["error"]
    # the same mistake again is not: once the daemon has refused it, and then (one change
    # at a time) taken the fixed file, there is still no third alert
    refused = refusals()
    rules.write_text(RULES + '\n[[rule]]\nname = "Urgent"\nset = { priority = "urgent" }\n\n')
    wait_until(lambda: refusals() > refused, what="the same mistake refused again")

    rules.write_text(RULES)  # fixed
    wait_until(lambda: _healthz(port)[0] == 200, what="/healthz healthy again")
    assert [r.kind for r in outbox_rows(settings)].count("alert") == 2
    assert _healthz(port)[1]["rules"] == {"ok": True, "error": None}
    wait_until(lambda: run_cli(settings, "status").returncode == 0, timeout=20, interval=0.5,
               what="helpdesk status healthy again")
