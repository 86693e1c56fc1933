"""The whole conversation, over real SMTP on loopback, on SQLite and PostgreSQL:
customer writes -> agents notified -> agents answer from their mail clients ->
customer gets clean text -> ... -> lead approves the resolution -> customer told ->
customer writes again and the ticket reopens."""

from __future__ import annotations

from typing import Any

import pytest

from helpdesk.config.settings import Settings
from tests import agent_mails
from tests.agent_desk import body, mails_to, msgid, reply_to, wait_mails_to
from tests.helpers import DaemonThread, RelaySink, all_tickets, make_mail, send, wait_ticket

CAROL = "carol@customer.test"


@pytest.fixture
def desk_overrides() -> dict[str, Any]:
    return {"queue": {"support": {"team": "support", "review": True}}}


def test_a_ticket_goes_from_first_mail_through_review_to_reopening(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    first = make_mail(cc="Dave <dave@customer.test>", body="Help, the printer is on fire.")
    send(daemon.port, first)

    # the whole support team hears of the new ticket, each with their own reply address
    notices = {name: wait_mails_to(relay, f"{name}@staff.test", 1)[0]
               for name in ("alice", "bob", "lisa")}
    note = notices["alice"]
    assert note["Subject"] == "New ticket: [HD-1] Printer on fire"
    assert note["Auto-Submitted"] == "auto-replied"
    assert "Help, the printer is on fire." in body(note)
    assert "Priority: normal" in body(note) and "#assign NAME|me" in body(note)
    assert reply_to(note).startswith("support+hd-1-a") and reply_to(note) != reply_to(
        notices["bob"])

    # alice answers from Gmail, assigning herself and attaching a file
    send(daemon.port, agent_mails.gmail(
        typed="#assign me\n\nHi Carol,\n\nplease switch it off at the wall.\n\nBest regards\n"
              "Alice", sender="Alice Agent <alice@staff.test>", to=reply_to(note),
        original=note, attachments=(("steps.txt", "text/plain", b"1. unplug\n"),)),
        sender="alice@staff.test", rcpts=[reply_to(note)])
    answer = wait_mails_to(relay, CAROL, 2)[1]  # after the acknowledgement
    assert answer["From"].addresses[0].addr_spec == "support@example.test"
    assert answer["Subject"] == "Re: [HD-1] Printer on fire"
    assert answer["In-Reply-To"] == f"<{msgid(first)}>"
    assert msgid(first) in answer["References"]
    assert [a.addr_spec for a in answer["Cc"].addresses] == ["dave@customer.test"]
    assert answer["Auto-Submitted"] is None
    text = body(answer)
    assert "please switch it off at the wall." in text
    assert "wrote:" not in text and "> " not in text and "#assign" not in text
    assert b"alice@staff.test" not in answer.as_bytes()
    assert [p.get_filename() for p in answer.iter_attachments()] == ["steps.txt"]
    t = wait_ticket(settings, 1, lambda t: t["status"] == "pending", "pending after reply")
    assert t["assignee"] == "alice" and t["first_response"]
    out = [m for m in t["messages"] if m["direction"] == "out"]
    assert len(out) == 1 and out[0]["body_text"].startswith("Hi Carol,")

    # the customer answers: the ticket is open again and its assignee hears of it
    send(daemon.port, make_mail(
        to=reply_to(answer), subject="Re: [HD-1] Printer on fire",
        in_reply_to=f"<{msgid(answer)}>", body="Still smoking.\n\n> please switch it off"),
        rcpts=[reply_to(answer)])
    told = wait_mails_to(relay, "alice@staff.test", 2)[1]
    assert told["Subject"].startswith("Customer replied: [HD-1]")
    assert "Still smoking." in body(told) and "please switch it off" not in body(told)
    assert wait_ticket(settings, 1, lambda t: t["status"] == "open", "open again")

    # bob writes an internal note from Outlook (German), answering his own notification
    send(daemon.port, agent_mails.outlook(
        typed="#note\nKunde ist VIP, bitte schnell.", sender="bob@staff.test",
        to="support@example.test", original=notices["bob"], lang="de"),
        sender="bob@staff.test")
    noted = wait_mails_to(relay, "alice@staff.test", 3)[2]
    assert noted["Subject"].startswith("Internal note: [HD-1]")
    assert "Kunde ist VIP" in body(noted)

    # alice resolves from Apple Mail: in a review queue this waits for lisa
    send(daemon.port, agent_mails.apple_mail(
        typed="#status resolved\n\nThe fuser was replaced, all good now.",
        sender="alice@staff.test", to=reply_to(told), original=told),
        rcpts=[reply_to(told)], sender="alice@staff.test")
    review = wait_mails_to(relay, "lisa@staff.test", 2)[1]
    assert review["Subject"].startswith("Resolution waiting for your approval: [HD-1]")
    assert "The fuser was replaced" in body(review)
    assert len(mails_to(relay, CAROL)) == 2  # nothing reached the customer
    t = wait_ticket(settings, 1, lambda t: any(e["kind"] == "review-requested"
                                               for e in t["events"]), "review requested")
    assert t["status"] == "open"
    assert not any("VIP" in m["body_text"] for m in t["messages"] if not m["internal"])

    # lisa approves from Thunderbird: the held reply goes out, the customer is told
    send(daemon.port, agent_mails.thunderbird(
        typed="#approve", sender="lisa@staff.test", to=reply_to(review), original=review),
        rcpts=[reply_to(review)], sender="lisa@staff.test")
    resolved = wait_mails_to(relay, CAROL, 3)[2]
    assert "The fuser was replaced, all good now." in body(resolved)
    assert "resolved" in body(resolved)
    t = wait_ticket(settings, 1, lambda t: t["status"] == "resolved", "resolved")
    status_changes = [(e["actor"], e["new"]) for e in t["events"] if e["field"] == "status"]
    assert ("lisa", "resolved") in status_changes and ("alice", "open") in status_changes
    assert wait_mails_to(relay, "alice@staff.test", 4)[3]["Subject"].startswith(
        "Resolution approved")

    # the customer writes again: the same ticket reopens
    send(daemon.port, make_mail(
        to=reply_to(resolved), subject="Re: [HD-1] Printer on fire",
        in_reply_to=f"<{msgid(resolved)}>", body="It is smoking again."),
        rcpts=[reply_to(resolved)])
    wait_ticket(settings, 1, lambda t: t["status"] == "open", "reopened")
    assert len(all_tickets(settings)) == 1


def test_a_customer_reply_withdraws_a_resolution_waiting_for_review(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail())
    note = wait_mails_to(relay, "alice@staff.test", 1)[0]
    send(daemon.port, agent_mails.gmail(
        typed="Hi Carol,\n\nplease switch it off at the wall.", sender="alice@staff.test",
        to=reply_to(note), original=note), sender="alice@staff.test", rcpts=[reply_to(note)])
    answer = wait_mails_to(relay, CAROL, 2)[1]
    send(daemon.port, agent_mails.gmail(
        typed="#status resolved\n\nThe fuser was replaced, all good now.",
        sender="alice@staff.test", to=reply_to(note), original=note),
        sender="alice@staff.test", rcpts=[reply_to(note)])
    review = wait_mails_to(relay, "lisa@staff.test", 2)[1]
    assert review["Subject"].startswith("Resolution waiting for your approval: [HD-1]")

    # before lisa decides, carol writes back: the ticket is not done
    send(daemon.port, make_mail(
        to=reply_to(answer), subject="Re: [HD-1] Printer on fire",
        in_reply_to=f"<{msgid(answer)}>", body="It is smoking again."),
        rcpts=[reply_to(answer)])
    t = wait_ticket(settings, 1, lambda t: t["status"] == "open" and any(
        e["kind"] == "review-withdrawn" for e in t["events"]), "open, review withdrawn")
    withdrawn = next(e for e in t["events"] if e["kind"] == "review-withdrawn")
    assert (withdrawn["actor"], withdrawn["detail"]) == (
        CAROL, "resolved by alice withdrawn from review: the customer wrote again")
    # lisa and alice hear of carol's reply, and why the review is gone
    for name in ("lisa", "alice"):
        told = wait_mails_to(relay, f"{name}@staff.test", 3 if name == "lisa" else 2)[-1]
        assert told["Subject"].startswith("Customer replied: [HD-1]")
        assert "withdrawn from review" in body(told) and "It is smoking again." in body(told)

    # lisa approves from the stale review mail: refused, the held reply never goes out
    send(daemon.port, agent_mails.thunderbird(
        typed="#approve", sender="lisa@staff.test", to=reply_to(review), original=review),
        rcpts=[reply_to(review)], sender="lisa@staff.test")
    refused = wait_mails_to(relay, "lisa@staff.test", 4)[3]
    assert refused["Subject"] == "Not applied: [HD-1] Printer on fire"
    assert "no resolution is waiting for review" in body(refused)
    t = wait_ticket(settings, 1, lambda t: any(e["kind"] == "command-error"
                                               for e in t["events"]), "approval refused")
    assert t["status"] == "open"
    assert len(mails_to(relay, CAROL)) == 2
    assert not any("fuser" in body(m) for m in mails_to(relay, CAROL))
    held = [m for m in t["messages"] if m["direction"] == "out" and "fuser" in m["body_text"]]
    assert [m["visibility"] for m in held] == ["not sent: review withdrawn"]


def _alice_resolves_and_lisa_approves(settings: Settings, daemon: DaemonThread,
                                      relay: RelaySink) -> Any:
    """A ticket alice resolves in the review queue and lisa approves; returns lisa's
    approval notice to alice (the mail alice answers next)."""
    send(daemon.port, make_mail())
    note = wait_mails_to(relay, "alice@staff.test", 1)[0]
    send(daemon.port, agent_mails.gmail(
        typed="#status resolved\n\nThe fuser was replaced, all good now.",
        sender="alice@staff.test", to=reply_to(note), original=note),
        sender="alice@staff.test", rcpts=[reply_to(note)])
    review = wait_mails_to(relay, "lisa@staff.test", 2)[1]
    send(daemon.port, agent_mails.thunderbird(
        typed="#approve", sender="lisa@staff.test", to=reply_to(review), original=review),
        rcpts=[reply_to(review)], sender="lisa@staff.test")
    wait_ticket(settings, 1, lambda t: t["status"] == "resolved", "approved resolution")
    return wait_mails_to(relay, "alice@staff.test", 2)[1]


def test_closing_an_approved_resolution_needs_no_second_review(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    approved = _alice_resolves_and_lisa_approves(settings, daemon, relay)
    assert approved["Subject"].startswith("Resolution approved")

    send(daemon.port, agent_mails.gmail(
        typed="#close", sender="alice@staff.test", to=reply_to(approved), original=approved),
        sender="alice@staff.test", rcpts=[reply_to(approved)])
    t = wait_ticket(settings, 1, lambda t: t["status"] == "closed", "closed by alice")
    assert [e["kind"] for e in t["events"]].count("review-requested") == 1
    assert len(mails_to(relay, "lisa@staff.test")) == 2  # new ticket, the one review
    closed = wait_mails_to(relay, CAROL, 3)[2]  # ack, the approved reply, then this
    assert "closed" in body(closed)
