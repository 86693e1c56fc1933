"""`helpdesk rules check` and `helpdesk rules test`, run as the admin would: a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "rules_mails"

HELPDESK_TOML = """
[helpdesk]
data_dir = "{data}"

[queue.support]
team = "support"

[queue.billing]
team = "support"
address = "billing@example.test"
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "helpdesk.toml").write_text(HELPDESK_TOML.format(data=tmp_path / "data"))
    shutil.copy(REPO / "config" / "rules.toml", tmp_path / "rules.toml")
    shutil.copy(REPO / "config" / "agents.toml", tmp_path / "agents.toml")
    return tmp_path


def helpdesk(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HELPDESK_CONFIG", None)
    command = [sys.executable, "-m", "helpdesk", "--config", str(site / "helpdesk.toml"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def test_check_accepts_the_example_rules(site: Path):
    result = helpdesk(site, "rules", "check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 8 rules")


def test_check_exits_1_with_one_line_per_problem(site: Path):
    (site / "rules.toml").write_text(
        '[[rule]]\nname = "A"\nset = { priority = "urgent" }\n\n'
        '[[rule]]\nname = "B"\nwhen.subject = { regex = "(" }\ntags = ["x"]\n'
    )
    result = helpdesk(site, "rules", "check")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: {site / 'rules.toml'}:3: rule 'A': set.priority: 'urgent' is not one of "
        "low, normal, high, critical",
        f"error: {site / 'rules.toml'}:7: rule 'B': when.subject.regex: invalid regular "
        "expression '(': missing ) at position 1",
    ]
    assert result.stdout == ""


def test_check_reports_a_broken_agents_file(site: Path):
    (site / "agents.toml").write_text("[[agent]]\nname = 'x'\n")
    result = helpdesk(site, "rules", "check")
    assert result.returncode == 1
    assert f"{site / 'agents.toml'}" in result.stderr and "email: is required" in result.stderr


def test_test_json_shows_each_rule_and_the_result(site: Path):
    result = helpdesk(site, "rules", "test", str(DATA / "rules-vip-outage.eml"), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    by_name = {r["name"]: r for r in data["rules"]}
    assert set(data["rules"][0]) == {"name", "matched", "reason", "timed_out"}
    assert by_name["VIP customers"]["matched"] is True
    assert by_name["Outage reports"]["matched"] is True
    assert by_name["Billing by keyword"]["reason"].startswith("subject 'Portal down since")
    assert by_name["Newsletters and mailing lists"]["matched"] is False
    res = data["result"]
    assert {
        k: res[k] for k in ("category", "priority", "queue", "assignee", "tags", "spam", "template")
    } == {
        "category": "incident",
        "priority": "critical",
        "queue": "support",
        "assignee": "team:ops (round_robin)",
        "tags": ["vip"],
        "spam": False,
        "template": None,
    }


def test_test_routes_by_address_to_the_billing_queue(site: Path):
    result = helpdesk(site, "rules", "test", str(DATA / "rules-billing.eml"), "--json")
    res = json.loads(result.stdout)["result"]
    assert (res["queue"], res["category"]) == ("billing", "billing")


def test_test_text_output_reads_rule_by_rule(site: Path):
    result = helpdesk(site, "rules", "test", str(DATA / "rules-question.eml"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "-     Billing by keyword: subject 'How do I change my password?' does not match" in out
    assert "queue:     support" in out
    assert "template:  (default)" in out


def test_test_on_a_corpus_newsletter_marks_it_spam(site: Path):
    result = helpdesk(site, "rules", "test", str(DATA / "corpus-newsletter.eml"), "--json")
    data = json.loads(result.stdout)
    assert data["result"]["spam"] is True
    assert data["result"]["stopped_by"] == "Newsletters and mailing lists"
    assert all(not r["matched"] for r in data["rules"][1:])


def test_test_on_a_corpus_mail_with_an_attachment(site: Path):
    (site / "rules.toml").write_text(
        '[[rule]]\nname = "Attachments"\nwhen.has_attachment = true\ntags = ["attachment"]\n'
        '[[rule]]\nname = "Long subjects"\nwhen.subject = { regex = "lo{20,}ng" }\n'
        'set = { category = "odd" }\n'
    )
    result = helpdesk(site, "rules", "test", str(DATA / "corpus-attachment-no-body.eml"), "--json")
    res = json.loads(result.stdout)["result"]
    assert res["tags"] == ["attachment"]
    assert res["category"] == "odd"


def test_test_with_broken_rules_exits_1(site: Path):
    (site / "rules.toml").write_text("[[rule]\n")
    result = helpdesk(site, "rules", "test", str(DATA / "rules-question.eml"))
    assert result.returncode == 1
    assert "not valid TOML" in result.stderr


def test_check_reports_every_problem_of_every_rule_one_line_each(site: Path):
    (site / "rules.toml").write_text(
        '[[rule]]\n'                                              # 1
        'name = "Many faults"\n'                                  # 2
        'when.subject = { regex = "(" }\n'                        # 3
        'when.from_domian = "y.test"\n'                           # 4
        'set = { priority = "urgent", queue = "nowhere" }\n'      # 5
        'stop = "yes"\n'                                          # 6
        'colour = "red"\n'                                        # 7
        '\n'
        '[[rule]]\n'                                              # 9
        'name = "Fine"\n'                                         # 10
        'tags = ["ok"]\n'                                         # 11
        '\n'
        '[[rule]]\n'                                              # 13
        'name = "Two more"\n'                                     # 14
        'assign = { agent = "nobody" }\n'                         # 15
        'apply_to = "sometimes"\n'                                # 16
    )
    result = helpdesk(site, "rules", "check")
    assert result.returncode == 1
    file = site / "rules.toml"
    assert result.stderr.strip().splitlines() == [
        f"error: {file}:3: rule 'Many faults': when.subject.regex: invalid regular "
        "expression '(': missing ) at position 1",
        f"error: {file}:4: rule 'Many faults': when.from_domian: unknown "
        "condition (did you mean 'from_domain'?)",
        f"error: {file}:5: rule 'Many faults': set.priority: 'urgent' is not one of "
        "low, normal, high, critical",
        f"error: {file}:5: rule 'Many faults': set.queue: no queue 'nowhere' in helpdesk.toml "
        "(known: billing, support)",
        f"error: {file}:6: rule 'Many faults': stop: must be true or false, got 'yes'",
        f"error: {file}:7: rule 'Many faults': colour: unknown key (known: name, description, "
        "when, stop, final, apply_to, enabled, set, assign, tags, spam, ack)",
        f"error: {file}:15: rule 'Two more': assign.agent: no agent 'nobody' in agents.toml",
        f"error: {file}:16: rule 'Two more': apply_to: 'sometimes' is not one of new, "
        "followups, all",
    ]


def test_test_reports_a_rule_whose_regex_ran_out_of_time(site: Path, tmp_path: Path):
    (site / "rules.toml").write_text(
        '[[rule]]\nname = "Slow trace"\nwhen.header."X-Trace" = { regex = "(x|xx)+y" }\n'
        'tags = ["traced"]\n\n[[rule]]\nname = "Every mail"\ntags = ["seen"]\n'
    )
    traces = "".join(f"X-Trace: y {'x' * 60}\n" for _ in range(50))
    mail = tmp_path / "slow.eml"
    mail.write_text(f"From: kim@example.org\nTo: support@example.test\nSubject: log\n{traces}"
                    "\nSee the trace.\n")

    text = helpdesk(site, "rules", "test", str(mail))
    assert text.returncode == 0, text.stderr
    assert ("TIMED OUT Slow trace: regex '(x|xx)+y' ran out of time (the rules may spend "
            "0.25s per mail); rule not applied") in text.stdout
    assert "MATCH Every mail: always" in text.stdout
    assert "timed out: Slow trace" in text.stdout
    assert "rule 'Slow trace' timed out" in text.stderr  # the log line, as the daemon writes it

    data = json.loads(helpdesk(site, "rules", "test", str(mail), "--json").stdout)
    assert [(r["name"], r["matched"], r["timed_out"]) for r in data["rules"]] == [
        ("Slow trace", False, True), ("Every mail", True, False)]
    assert data["result"]["tags"] == ["seen"]
    assert data["result"]["timed_out"] == [
        {"rule": "Slow trace", "pattern": "(x|xx)+y", "reason": data["rules"][0]["reason"]}]
