"""Agents' commands and who may give them: forged senders, bad tokens, unknown
commands, command-only replies, assignment, Authentication-Results, the reopen window."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage

import pytest

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.mail import tokens
from tests import agent_mails
from tests.agent_desk import body, mails_to, msgid, reply_to, wait_mails_to
from tests.helpers import (
    DaemonThread,
    RelaySink,
    all_tickets,
    make_mail,
    outbox_rows,
    run_cli,
    send,
    ticket,
    wait_ticket,
    wait_until,
)

CAROL = "carol@customer.test"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)




def _open_ticket(daemon: DaemonThread, relay: RelaySink) -> EmailMessage:
    """A customer writes; returns alice's new-ticket notification."""
    send(daemon.port, make_mail(subject="Printer on fire"))
    return wait_mails_to(relay, "alice@staff.test", 1)[0]


def _alice(daemon: DaemonThread, note: EmailMessage, typed: str, *, to: str = "",
           headers: dict[str, str] | None = None) -> None:
    to = to or reply_to(note)
    raw = agent_mails.gmail(typed=typed, sender="Alice <alice@staff.test>", to=to,
                            original=note)
    if headers:
        raw = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + raw
    send(daemon.port, raw, sender="alice@staff.test", rcpts=[to])


def _unverified(settings: Settings) -> int:
    return sum(e["kind"] == "unverified-agent" for t in all_tickets(settings)
               for e in t["events"])


def test_a_forged_agent_from_cannot_close_or_reassign(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    _open_ticket(daemon, relay)
    forged = make_mail(sender="Alice <alice@staff.test>", subject="Re: [HD-1] Printer on fire",
                       body="#close\n#assign bob\n\nDone, closing.")
    send(daemon.port, forged, sender="alice@staff.test")
    wait_until(lambda: _unverified(settings) == 1, what="the forged mail stored")
    first = ticket(settings, 1)
    assert (first["status"], first["assignee"]) == ("new", "")
    assert not any(e["actor"] == "alice" for e in first["events"])
    assert not [r for r in outbox_rows(settings) if r.kind == "agent-reply"]
    assert len(mails_to(relay, CAROL)) == 1  # the acknowledgement only


@SQLITE_ONLY
def test_a_wrong_foreign_or_expired_token_runs_no_command(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    note = _open_ticket(daemon, relay)
    bobs = reply_to(wait_mails_to(relay, "bob@staff.test", 1)[0])  # signed for bob
    good = reply_to(note)
    at = good.index("@")
    tampered = good[:at - 1] + ("z" if good[at - 1] != "z" else "y") + good[at:]
    number = int(good.split("-a", 1)[1].split("-", 1)[0])
    rotated = tokens.reply_address("support", "example.test", "HD", b"last-years-secret", 1,
                                   agent=number)
    bob_note = wait_mails_to(relay, "bob@staff.test", 1)[0]
    # no In-Reply-To to alice's own notification: that alone would prove the mail hers
    for address, in_reply_to in ((tampered, ""), (bobs, f"<{msgid(bob_note)}>"),
                                 (rotated, "")):
        send(daemon.port, make_mail(sender="alice@staff.test", to=address,
                                    subject="Re: [HD-1] Printer on fire",
                                    body="#close\n#assign me\n\nDone.",
                                    in_reply_to=in_reply_to),
             sender="alice@staff.test", rcpts=[address])
    wait_until(lambda: _unverified(settings) == 3, what="three refused agent mails")
    first = ticket(settings, 1)
    assert (first["status"], first["assignee"]) == ("new", "")
    assert not [r for r in outbox_rows(settings) if r.kind in ("agent-reply", "status-resolved")]


def test_an_unknown_command_applies_nothing_and_tells_the_agent(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    note = _open_ticket(daemon, relay)
    _alice(daemon, note, "#assign me\n#frobnicate now\n#priority urgent\n\nHi Carol, done.")
    refused = wait_mails_to(relay, "alice@staff.test", 2)[1]
    assert refused["Subject"] == "Not applied: [HD-1] Printer on fire"
    text = body(refused)
    assert "#frobnicate now: unknown command #frobnicate" in text
    assert "#priority urgent: priority must be one of low, normal, high, critical" in text
    assert "#status open|pending|resolved|closed" in text  # the valid commands
    first = ticket(settings, 1)
    assert (first["status"], first["assignee"], first["priority"]) == ("new", "", "normal")
    assert len(mails_to(relay, CAROL)) == 1


def test_a_reply_with_only_commands_sends_nothing_to_the_customer(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    note = _open_ticket(daemon, relay)
    _alice(daemon, note, "#priority high\n#tag vip hardware\n#category printers\n#assign bob")
    t = wait_ticket(settings, 1, lambda t: t["priority"] == "high", "priority high")
    assert (t["status"], t["category"], t["tags"], t["assignee"]) == (
        "open", "printers", ["hardware", "vip"], "bob")
    assert t["first_response"] is None
    changes = {e["field"]: e["actor"] for e in t["events"] if e["kind"] == "change"}
    assert {changes[f] for f in ("priority", "category", "tags", "assignee", "status")} \
        == {"alice"}
    assigned = wait_mails_to(relay, "bob@staff.test", 2)[1]
    assert assigned["Subject"].startswith("Assigned to you: [HD-1]")
    assert len(mails_to(relay, CAROL)) == 1
    assert t["watchers"] == ["alice"]


@SQLITE_ONLY
@pytest.mark.parametrize("desk", [{"agents_auth": {
    "require_authentication_results": True, "trusted_authserv_ids": ["mx.example.test"]}}],
    indirect=True)
def test_authentication_results_must_pass_when_required(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    note = _open_ticket(daemon, relay)
    _alice(daemon, note, "#priority low")
    _alice(daemon, note, "#priority low", headers={
        "Authentication-Results": "evil.test; dkim=pass header.d=staff.test"})
    wait_until(lambda: _unverified(settings) == 2, what="two unauthenticated agent mails")
    assert ticket(settings, 1)["priority"] == "normal"
    _alice(daemon, note, "#priority high", headers={
        "Authentication-Results": "mx.example.test; spf=fail smtp.mailfrom=x@evil.test; "
                                  "dkim=pass (2048-bit key) header.d=staff.test"})
    wait_ticket(settings, 1, lambda t: t["priority"] == "high", "authenticated command")


@SQLITE_ONLY
def test_resolving_tells_the_customer_and_a_late_reply_opens_a_linked_ticket(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    note = _open_ticket(daemon, relay)
    _alice(daemon, note, "#status resolved")
    notice = wait_mails_to(relay, CAROL, 2)[1]
    assert notice["Subject"] == "[HD-1] Printer on fire is resolved"
    assert notice["Auto-Submitted"] == "auto-replied"
    wait_ticket(settings, 1, lambda t: t["status"] == "resolved" and t["resolved"], "resolved")
    clock.freeze(clock.now() + timedelta(days=31))  # past [helpdesk] reopen_window_days
    send(daemon.port, make_mail(to=reply_to(notice), subject="Re: [HD-1] Printer on fire",
                                body="It broke again."), rcpts=[reply_to(notice)])
    second = wait_ticket(settings, 2, lambda t: True, "a new ticket")
    assert second["linked"] == "HD-1"
    assert ticket(settings, 1)["status"] == "resolved"


@SQLITE_ONLY
def test_tickets_show_marks_internal_notes_and_outgoing_replies(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    note = _open_ticket(daemon, relay)
    _alice(daemon, note, "#note\nThe customer seems upset.")
    _alice(daemon, note, "Hello Carol, we are on it.")
    wait_mails_to(relay, CAROL, 2)
    shown = run_cli(settings, "tickets", "show", "HD-1")
    out = shown.stdout.decode()
    assert shown.returncode == 0, shown.stderr.decode()
    assert "--- in (internal, agents only) from alice@staff.test" in out
    assert "The customer seems upset." in out
    assert "--- out (sent to customer) by alice to carol@customer.test" in out
    assert "watchers   alice" in out


@SQLITE_ONLY
def test_an_agents_out_of_office_answer_never_reaches_the_customer(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    note = _open_ticket(daemon, relay)
    _alice(daemon, note, "#close\nI am out of the office until Monday.",
           headers={"Auto-Submitted": "auto-replied"})
    wait_ticket(settings, 1, lambda t: any(e["kind"] == "auto-reply" for e in t["events"]),
                "the out-of-office answer stored")
    assert ticket(settings, 1)["status"] == "new"
    assert len(mails_to(relay, CAROL)) == 1
