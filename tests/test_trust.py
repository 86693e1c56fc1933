"""Nobody joins a ticket uninvited: what an outsider can do with a ticket number, the
helpdesk's own address or a customer's Message-ID, and who an agent's reply goes to.

Each scenario is an attack from outside, over real SMTP to our listener; what left
the helpdesk is read off the relay (see docs/security.md for the trust model)."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import pytest

from helpdesk.config.settings import Settings
from helpdesk.store import db, queries
from tests import agent_mails
from tests.agent_desk import body, mails_to, wait_mails_to
from tests.helpers import (
    DaemonThread,
    RelaySink,
    all_tickets,
    engine_for,
    make_mail,
    send,
    ticket,
    wait_ticket,
    wait_until,
)

CAROL = "carol@customer.test"


@pytest.fixture
def desk_overrides() -> dict[str, Any]:
    return {"helpdesk": {"domains": ["example.test", "example.org"]}}


def _alice_answers(daemon: DaemonThread, relay: RelaySink, text: str, answers: int) -> Any:
    """alice replies to her new-ticket notification; returns the relayed answer to carol
    (the `answers`-th mail to carol, the acknowledgement being the first)."""
    note = wait_mails_to(relay, "alice@staff.test", 1)[0]
    address = note["Reply-To"].addresses[0].addr_spec
    send(daemon.port, agent_mails.gmail(typed=text, sender="alice@staff.test", to=address,
                                        original=note),
         sender="alice@staff.test", rcpts=[address])
    wait_mails_to(relay, CAROL, answers)
    return [r for r in relay.received if CAROL in r.rcpt_tos][answers - 1]


def _everyone_mailed(relay: RelaySink) -> set[str]:
    return {rcpt for r in relay.received for rcpt in r.rcpt_tos}


def _quarantine_reasons(settings: Settings) -> list[str]:
    with db.snapshot_scope(engine_for(settings)) as session:
        return [q.reason for q in queries.quarantined(session)]


@pytest.mark.parametrize(("first_to", "forged_from"), [
    ("support@example.test", "Example Helpdesk <support@example.test>"),
    ("support@example.test", "SUPPORT+hd-1-aaaaaaaaaaaa@Example.Test"),
    ("Support <support@example.org>", "support@example.org"),  # a domain alias
    ("billing@example.test", "billing@example.test"),  # a queue's mailbox
])
def test_mail_claiming_to_be_from_the_helpdesk_never_joins_the_ticket(
    desk: tuple[Settings, DaemonThread], relay: RelaySink, first_to: str, forged_from: str,
) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail(to=first_to))
    wait_mails_to(relay, CAROL, 1)  # the acknowledgement
    # the helpdesk's address was on the customer's mail, so it "was on the conversation"
    forged = make_mail(sender=forged_from, subject="Re: [HD-1] Printer on fire",
                       cc="Mallory <mallory@evil.test>", body="Please copy my colleague.")
    send(daemon.port, forged, sender="mallory@evil.test")
    wait_until(lambda: _quarantine_reasons(settings), what="the forged mail held")
    assert "this helpdesk's own address" in _quarantine_reasons(settings)[0]

    answer = _alice_answers(daemon, relay, "Hi Carol,\n\nswitch it off.", 2)
    assert answer.rcpt_tos == [CAROL]
    assert "Cc" not in answer.message
    assert "mallory@evil.test" not in _everyone_mailed(relay)
    assert len(ticket(settings, 1)["messages"]) == 3  # carol's, alice's, the answer
    assert len(all_tickets(settings)) == 1


def test_a_stranger_quoting_the_customers_message_id_is_filed_internal_and_copied_on_nothing(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail(message_id="<q1@customer.test>"))
    _alice_answers(daemon, relay, "Hi Carol,\n\nswitch it off.", 2)
    wait_ticket(settings, 1, lambda t: t["status"] == "pending", "pending after the answer")

    # Message-IDs travel in every Cc, archive and mailing list: they prove nothing
    send(daemon.port, make_mail(
        sender="Mallory <mallory@evil.test>", subject="Re: Printer on fire",
        in_reply_to="<q1@customer.test>", cc="eve@evil.test", body="Add Eve please."),
        sender="mallory@evil.test")
    t = wait_ticket(settings, 1, lambda t: len(t["messages"]) == 4, "the stranger's mail")
    stranger = t["messages"][3]
    assert stranger["from"] == "mallory@evil.test"
    assert stranger["visibility"] == "internal"
    assert stranger["threaded_by"] == "In-Reply-To <q1@customer.test> from a non-participant"
    assert t["status"] == "pending"  # reopened nothing
    assert any(e["kind"] == "unverified-sender" and e["actor"] == "mallory@evil.test"
               for e in t["events"])
    # the agents are told, so the mail is not lost on them
    told = wait_mails_to(relay, "alice@staff.test", 2)[1]
    assert "not on this conversation" in body(told)

    answer = _alice_answers(daemon, relay, "Hi Carol,\n\nnow unplug it.", 3)
    assert answer.rcpt_tos == [CAROL]
    assert not {"mallory@evil.test", "eve@evil.test"} & _everyone_mailed(relay)


def test_a_forged_customer_address_with_the_tag_cannot_add_people_to_the_reply(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail(cc="Dave <dave@customer.test>"))
    wait_mails_to(relay, CAROL, 1)
    # From: is anyone's to write; the ticket number is in every subject line
    send(daemon.port, make_mail(subject="Re: [HD-1] Printer on fire", body="Still burning.",
                                cc="dave@customer.test, mallory@evil.test"),
         sender="mallory@evil.test")
    t = wait_ticket(settings, 1, lambda t: len(t["messages"]) == 2, "the tagged mail")
    assert t["messages"][1]["threaded_by"] == "subject tag [HD-1]"
    held = [e for e in t["events"] if e["kind"] == "cc-not-admitted"]
    assert held and "mallory@evil.test" in held[0]["detail"]

    answer = _alice_answers(daemon, relay, "Hi Carol,\n\nswitch it off.", 2)
    assert answer.rcpt_tos == [CAROL, "dave@customer.test"]  # dave the customer brought
    assert "mallory@evil.test" not in _everyone_mailed(relay)


def test_a_reply_to_our_mail_may_bring_a_colleague_onto_the_ticket(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    _, daemon = desk
    send(daemon.port, make_mail())
    ack = wait_mails_to(relay, CAROL, 1)[0]
    # answering our acknowledgement proves carol got it: her Cc is hers to choose
    send(daemon.port, make_mail(subject="Re: [HD-1] Printer on fire", cc="erin@customer.test",
                                in_reply_to=ack["Message-ID"], body="Erin is our admin."))
    wait_mails_to(relay, "alice@staff.test", 2)
    answer = _alice_answers(daemon, relay, "Hi Carol, hi Erin.", 2)
    assert answer.rcpt_tos == [CAROL, "erin@customer.test"]


def test_a_customer_named_like_an_agent_does_not_mute_that_agent(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    _, daemon = desk
    send(daemon.port, make_mail(sender="alice <carol@customer.test>"))
    for name in ("alice", "bob", "lisa"):
        note: EmailMessage = wait_mails_to(relay, f"{name}@staff.test", 1)[0]
        assert note["Subject"] == "New ticket: [HD-1] Printer on fire"


def test_a_customer_mail_with_two_thousand_cc_does_not_fan_out(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    crowd = [f"person{i}@crowd.test" for i in range(2000)]
    send(daemon.port, make_mail(cc=", ".join(crowd)))
    answer = _alice_answers(daemon, relay, "Hi Carol,\n\nswitch it off.", 2)
    assert answer.rcpt_tos == [CAROL, *crowd[:10]]  # [helpdesk] max_kept_cc
    assert mails_to(relay, "person10@crowd.test") == []
    cut = [e for e in ticket(settings, 1)["events"] if e["kind"] == "cc-capped"]
    assert len(cut) == 1 and "1990 of 2000" in cut[0]["detail"]
