"""Agents open tickets (issue #20, second half), against the real daemon on loopback:
by mail over SMTP, in the desk over HTTP, on the command line. An internal ticket
mails no customer (the relay and the outbox say so); one opened for a customer is
acknowledged to that customer with the status link, unless the agent said not to."""

from __future__ import annotations

from typing import Any

import pytest

from helpdesk.config.settings import Settings
from helpdesk.store import db
from helpdesk.store.models import Contact, Ticket
from tests.agent_desk import body, mails_to, wait_mails_to
from tests.helpers import (
    DaemonThread,
    RelaySink,
    engine_for,
    invoke_cli,
    make_mail,
    outbox_rows,
    send,
    ticket,
    wait_ticket,
    wait_until,
)
from tests.test_web_actions import AGENTS_AND_OMAR, Browsers, browsers, hidden  # noqa: F401

DAN = "dan@customer.test"
# what our MTA (mx.example.test, trusted) adds to alice's DKIM-signed mail
SIGNED = {"Authentication-Results": "mx.example.test; dkim=pass header.d=staff.test"}


@pytest.fixture
def desk_overrides() -> dict[str, Any]:
    return {"agents": AGENTS_AND_OMAR, "web": {"enabled": True},
            "portal": {"enabled": True},
            "agents_auth": {"trusted_authserv_ids": ["mx.example.test"]}}


def _row(settings: Settings, number: int) -> tuple[bool, str]:
    with db.session_scope(engine_for(settings)) as session:
        row = session.get(Ticket, number)
        assert row is not None
        contact = session.get(Contact, row.contact_id) if row.contact_id else None
        return row.internal, contact.email if contact else ""


def _customer_mail(settings: Settings) -> list[str]:
    """Outbox rows that are mail to a customer (not an agent's notification)."""
    return [r.kind for r in outbox_rows(settings) if not r.agent]


def test_an_agent_mailing_the_support_address_opens_an_internal_ticket(
        desk: tuple[Settings, DaemonThread], relay: RelaySink) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail(sender="Alice <alice@staff.test>",
                                subject="Staging login broken",
                                body="#priority high\n\nThe login on staging gives a 500.",
                                headers=SIGNED),
         sender="alice@staff.test")
    found = wait_ticket(settings, 1, lambda t: t["priority"] == "high")
    assert _row(settings, 1) == (True, "")
    created = next(e for e in found["events"] if e["kind"] == "created")
    assert created["actor"] == "alice"
    assert [e["actor"] for e in found["events"] if e["field"] == "priority"] == ["alice"]
    notice = wait_mails_to(relay, "bob@staff.test", 1)[0]  # the team hears of it
    assert "The login on staging gives a 500." in body(notice)
    assert _customer_mail(settings) == []  # no acknowledgement loops back to alice
    assert mails_to(relay, "alice@staff.test") == []


def test_customer_on_the_first_line_opens_the_customers_ticket_acknowledged(
        desk: tuple[Settings, DaemonThread], relay: RelaySink) -> None:
    settings, daemon = desk
    msg = make_mail(sender="Alice <alice@staff.test>", subject="Printer jammed",
                    body=f"#customer {DAN}\n#priority high\n\nDan called: the printer jams.",
                    headers=SIGNED)
    send(daemon.port, msg, sender="alice@staff.test")
    ack = wait_mails_to(relay, DAN, 1)[0]
    assert "/portal/ticket/" in body(ack)  # the status link
    found = wait_ticket(settings, 1, lambda t: t["priority"] == "high")
    assert _row(settings, 1) == (False, DAN)
    assert any(e["kind"] == "opened-by" and e["actor"] == "alice" for e in found["events"])
    send(daemon.port, msg, sender="alice@staff.test")  # redelivered: still one ticket
    wait_until(lambda: len([o for o in outbox_rows(settings)]) >= 1)
    assert len(mails_to(relay, DAN)) == 1
    with pytest.raises(AssertionError):
        ticket(settings, 2)


@pytest.mark.parametrize("proof", [
    {},  # From alone is anyone's to write
    {"Authentication-Results": "evil.test; dkim=pass header.d=staff.test"},  # not our MTA
    {"Authentication-Results": "mx.example.test; dkim=fail header.d=staff.test"},
])
def test_a_forged_agent_address_opens_no_ticket_of_theirs_and_mails_no_stranger(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, proof: dict[str, str]) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail(sender="Alice <alice@staff.test>", subject="Printer jammed",
                                body=f"#customer {DAN}\n#priority critical\n\nSend this on.",
                                headers=proof),
         sender="alice@staff.test")
    found = wait_ticket(settings, 1)
    # what it was before agents could open tickets by mail: customer mail, no command run
    assert _row(settings, 1) == (False, "alice@staff.test")
    assert found["priority"] != "critical"
    assert any(e["kind"] == "unverified-agent" for e in found["events"])
    wait_mails_to(relay, "bob@staff.test", 1)  # the team was told of the new ticket
    assert mails_to(relay, DAN) == []


def _new_form(browser: Any) -> dict[str, str]:
    page = browser.get("/desk/new")
    assert page.status_code == 200, page.text
    return {"csrf_token": hidden(page, "csrf_token"), "nonce": hidden(page, "nonce")}


def test_the_desk_opens_an_internal_ticket_once_however_often_submitted(
        desk: tuple[Settings, DaemonThread], relay: RelaySink,
        browsers: Browsers) -> None:  # noqa: F811
    settings, _ = desk
    alice = browsers("alice")
    form = {**_new_form(alice), "kind": "internal", "subject": "Release blocker",
            "text": "The build fails on main.", "queue": "support", "priority": "critical",
            "assign": "bob", "category": "build"}
    files = {"attachments": ("log.txt", b"error: boom\n", "text/plain")}
    first = alice.post("/desk/new", data=form, files=files)
    again = alice.post("/desk/new", data=form, files=files)  # a double submit
    assert first.status_code == again.status_code == 303, first.text
    assert first.headers["location"] == again.headers["location"] == "/desk/ticket/1"
    found = ticket(settings, 1)
    assert (found["priority"], found["assignee"], found["category"]) == (
        "critical", "bob", "build")
    assert _row(settings, 1) == (True, "")
    with pytest.raises(AssertionError):
        ticket(settings, 2)
    page = alice.get("/desk/ticket/1")
    assert '<span class="badge internal">internal</span>' in page.text
    assert "log.txt" in page.text
    queue = alice.get("/desk/queue/all")
    assert '<span class="badge internal">internal</span>' in queue.text
    search = alice.get("/desk/search", params={"q": "build fails"})
    assert "HD-1: Release blocker" in search.text and "agent mail or note" in search.text
    assert 'Release blocker</a> <span class="badge internal">internal</span>' in search.text
    wait_mails_to(relay, "bob@staff.test", 1)  # assigned to bob: he is told
    assert _customer_mail(settings) == []


def test_the_desk_checks_csrf_queue_and_fields(
        desk: tuple[Settings, DaemonThread], browsers: Browsers) -> None:  # noqa: F811
    settings, _ = desk
    omar = browsers("omar")  # works the ops queues only
    form = {**_new_form(omar), "kind": "internal", "subject": "x", "text": "y",
            "queue": "support"}
    refused = omar.post("/desk/new", data=form)
    assert refused.status_code == 422 and "may not open tickets in the queue" in refused.text
    assert omar.post("/desk/new", data={**form, "csrf_token": "forged"}).status_code == 403
    alice = browsers("alice")
    form = {**_new_form(alice), "kind": "customer", "customer": "bob@staff.test",
            "subject": "x", "text": "y", "queue": "support"}
    answer = alice.post("/desk/new", data=form)
    assert answer.status_code == 422 and "an agent&#39;s" in answer.text
    assert 'value="x"' in answer.text  # what was typed is kept
    assert outbox_rows(settings) == []


def test_the_desk_opens_a_ticket_for_a_customer_with_or_without_acknowledgement(
        desk: tuple[Settings, DaemonThread], relay: RelaySink,
        browsers: Browsers) -> None:  # noqa: F811
    settings, _ = desk
    alice = browsers("alice")
    form = {**_new_form(alice), "kind": "customer", "customer": DAN,
            "customer_name": "Dan", "subject": "Phone call: VPN down",
            "text": "Dan cannot connect to the VPN.", "queue": "support",
            "priority": "high", "ack": "yes"}
    sent = alice.post("/desk/new", data=form)
    assert sent.status_code == 303 and sent.headers["location"].startswith("/desk/new/sent/")
    ack = wait_mails_to(relay, DAN, 1)[0]
    assert "/portal/ticket/" in body(ack)
    wait_until(lambda: alice.get(sent.headers["location"]).status_code == 303)
    assert alice.get(sent.headers["location"]).headers["location"] == "/desk/ticket/1"
    assert ticket(settings, 1)["priority"] == "high"
    desk[1].pipeline_waits_for_a_poke()  # the desk's spooled request wakes the pipeline
    quiet = {**_new_form(alice), "kind": "customer", "customer": "erin@customer.test",
             "subject": "Walk-in", "text": "Erin's laptop.", "queue": "support"}
    assert alice.post("/desk/new", data=quiet).status_code == 303  # ack unticked
    found = wait_ticket(settings, 2)
    assert any(e["kind"] == "no-ack" for e in found["events"])
    assert mails_to(relay, "erin@customer.test") == []


def test_the_command_line_opens_internal_and_customer_tickets(
        desk: tuple[Settings, DaemonThread], relay: RelaySink) -> None:
    settings, _ = desk
    made = invoke_cli(settings, "tickets", "new", "--subject", "Disk 91% on db1",
                      "--priority", "high", "--as", "alice", stdin="df says 91%\n")
    assert made.exit_code == 0, made.output
    assert made.output.strip() == "HD-1"
    assert _row(settings, 1) == (True, "")
    assert ticket(settings, 1)["priority"] == "high"
    spooled = invoke_cli(settings, "tickets", "new", "--subject", "Your order",
                         "--customer", DAN, "--as", "alice", stdin="We shipped it.\n")
    assert spooled.exit_code == 0 and "spooled as" in spooled.output, spooled.output
    wait_mails_to(relay, DAN, 1)
    assert _row(settings, 2) == (False, DAN)
    alert = settings.data_dir / "alert.txt"
    alert.write_text("CRITICAL: backup job failed on db2\n")
    from_file = invoke_cli(settings, "tickets", "new", "--subject", "Backup failed",
                           "--file", str(alert), "--assign", "bob", "--as", "alice")
    assert from_file.output.strip() == "HD-3", from_file.output
    assert ticket(settings, 3)["assignee"] == "bob"
    bad = invoke_cli(settings, "tickets", "new", "--subject", "x", "--priority", "urgent",
                     "--as", "alice", stdin="y")
    assert bad.exit_code != 0 and "priority" in bad.output
    assert _customer_mail(settings) == ["ack"]


RULES = ('[[rule]]\nname = "All low"\nwhen.subject = { regex = "." }\n'
         'set = { priority = "low", category = "general" }\n')


@pytest.mark.parametrize("desk", [{"rules": RULES}], indirect=True)
def test_the_agents_fields_win_over_the_rules(
        desk: tuple[Settings, DaemonThread], relay: RelaySink) -> None:
    settings, _ = desk
    spooled = invoke_cli(settings, "tickets", "new", "--subject", "Order lost",
                         "--customer", DAN, "--priority", "high", "--as", "alice",
                         stdin="Dan's order never came.\n")
    assert spooled.exit_code == 0, spooled.output
    found = wait_ticket(settings, 1, lambda t: t["priority"] == "high")
    assert found["category"] == "general"  # what the agent left open, the rules decide
    changes = [(e["actor"], e["new"]) for e in found["events"] if e["field"] == "priority"]
    assert changes == [("rule:All low", "low"), ("alice", "high")]
    assert "/portal/ticket/" in body(wait_mails_to(relay, DAN, 1)[0])
