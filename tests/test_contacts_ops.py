"""Customers and organisations: contacts grouped by domain (configured names; free-mail
domains are nobody's), "all tickets of bigcorp" as one query (`helpdesk contacts org`)
and one click in the desk (the queue filter, linked from the ticket page); the VIP flag
(`helpdesk contacts vip`) read by the rules (`when.vip`, `when.organisation`) through
the real daemon."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpdesk.config.settings import Settings
from helpdesk.store.contacts_ops import organisation
from tests.agent_desk import AGENTS
from tests.helpers import DaemonThread, RelaySink, invoke_cli, make_mail, send, wait_ticket
from tests.ops_helpers import signed_in_browsers
from tests.test_web_actions import Browsers

RULES = """
[[rule]]
name = "VIPs first"
when.vip = true
set = { priority = "critical" }

[[rule]]
name = "BigCorp"
when.organisation = "bigcorp"
tags = ["bigcorp"]
"""
ORGS = {"organisations": {"BigCorp": ["bigcorp.com", "bigcorp.de"]}}


@pytest.fixture
def desk_overrides() -> dict[str, Any]:
    return {"agents": AGENTS, "rules": RULES, "web": {"enabled": True}, "ticket_ops": ORGS}


@pytest.fixture
def browsers(desk: tuple[Settings, DaemonThread]) -> Iterator[Browsers]:
    yield from signed_in_browsers(desk)


def test_organisations_by_domain_with_names_and_without_free_mail() -> None:
    settings = Settings.model_validate({"ticket_ops": ORGS})
    assert [organisation(settings, a) for a in (
        "carol@bigcorp.com", "Dave@EU.BigCorp.de", "erin@smallshop.test", "fred@gmail.com",
        "gina@mail.yahoo.com", "nobody")] == ["bigcorp", "bigcorp", "smallshop.test", "",
                                              "", ""]


def test_vip_and_organisation_drive_the_rules_and_the_desk_filters_by_organisation(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    settings, daemon = desk
    flagged = invoke_cli(settings, "contacts", "vip", "Carol@bigcorp.com", "--as", "lisa")
    assert flagged.exit_code == 0 and "carol@bigcorp.com: VIP" in flagged.stdout
    assert invoke_cli(settings, "contacts", "vips").stdout.split() == ["carol@bigcorp.com"]
    senders = ("Carol <carol@bigcorp.com>", "Dave <dave@eu.bigcorp.de>",
               "Fred <fred@gmail.com>", "Erin <erin@smallshop.test>")
    for i, sender in enumerate(senders, 1):
        send(daemon.port, make_mail(sender=sender, subject=f"Problem {i}"),
             sender=sender.split("<")[1].rstrip(">"))
        wait_ticket(settings, i)
    carol, dave, fred = (wait_ticket(settings, i) for i in (1, 2, 3))
    assert (carol["priority"], carol["tags"]) == ("critical", ["bigcorp"])
    assert (dave["priority"], dave["tags"]) == ("normal", ["bigcorp"])
    assert (fred["priority"], fred["tags"]) == ("normal", [])

    # one query: every ticket of bigcorp, and the organisations with their contacts
    listed = json.loads(invoke_cli(settings, "contacts", "org", "BigCorp", "--json").stdout)
    assert [t["id"] for t in listed] == ["HD-1", "HD-2"]
    orgs = invoke_cli(settings, "contacts", "orgs").stdout
    assert "bigcorp" in orgs and "smallshop.test" in orgs and "gmail" not in orgs
    assert invoke_cli(settings, "contacts", "org", "gmail.com").exit_code == 1

    # one click: the ticket page links its organisation's tickets
    alice = browsers("alice")
    page = alice.get("/desk/ticket/2").text
    assert 'Organisation <strong>bigcorp</strong>' in page
    assert "VIP customer" in alice.get("/desk/ticket/1").text and "VIP" not in page
    listing = alice.get("/desk/queue/all?org=bigcorp")
    assert listing.status_code == 200
    assert "Problem 1" in listing.text and "Problem 2" in listing.text
    assert "Problem 3" not in listing.text and "Problem 4" not in listing.text
    assert 'name="org" value="bigcorp"' in listing.text
    assert "Organisation" not in alice.get("/desk/ticket/3").text
    assert alice.get("/desk/queue/all?org=gmail.com").status_code == 404

    off = invoke_cli(settings, "contacts", "vip", "carol@bigcorp.com", "--off")
    assert off.exit_code == 0 and invoke_cli(settings, "contacts", "vips").stdout == ""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_rules_test_tries_a_mail_as_from_a_vip_and_names_its_organisation(
        desk_settings: Any, tmp_path: Path) -> None:
    settings = desk_settings(rules=RULES, ticket_ops=ORGS)
    mail = tmp_path / "m.eml"
    mail.write_bytes(make_mail(sender="Dave <dave@bigcorp.de>").as_bytes())
    plain = json.loads(invoke_cli(settings, "rules", "test", str(mail), "--json").stdout)
    vip = json.loads(invoke_cli(settings, "rules", "test", str(mail), "--json", "--vip").stdout)
    assert [r["matched"] for r in plain["rules"]] == [False, True]
    assert [r["matched"] for r in vip["rules"]] == [True, True]
    assert vip["result"]["priority"] == "critical"
