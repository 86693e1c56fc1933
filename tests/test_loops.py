"""No mail loops: automatic mail, lists and bounces get no acknowledgement (RFC 3834)."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from helpdesk.config.settings import Settings
from helpdesk.store.db import session_scope
from helpdesk.store.models import Ticket
from tests import agent_mails
from tests.agent_desk import mails_to, reply_to, wait_mails_to
from tests.helpers import (
    DaemonThread,
    RelaySink,
    all_tickets,
    drained,
    engine_for,
    make_mail,
    outbox_rows,
    send,
    wait_drained,
    wait_ticket,
    wait_until,
)

CAROL = "carol@customer.test"


def _no_ack_reason(settings: Settings, count: int = 1) -> str:
    """Why the last of `count` tickets was not acknowledged."""
    last = wait_ticket(settings, count, timeout=10)
    events = [e for e in last["events"] if e["kind"] == "no-ack"]
    assert events, last["events"]
    return str(events[0]["detail"])


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Auto-Submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
        ({"Auto-Submitted": "auto-generated"}, "Auto-Submitted: auto-generated"),
        ({"Precedence": "bulk"}, "Precedence: bulk"),
        ({"Precedence": "junk"}, "Precedence: junk"),
        ({"Precedence": "list"}, "Precedence: list"),
        ({"List-Id": "<announce.lists.customer.test>"}, "list mail (list-id)"),
        ({"X-Auto-Response-Suppress": "OOF, AutoReply"}, "X-Auto-Response-Suppress"),
    ],
)
def test_automatic_and_list_mail_is_stored_but_not_acknowledged(
    headers: dict[str, str], reason: str, daemon: DaemonThread, relay: RelaySink,
    settings_with_relay: Settings,
) -> None:
    send(daemon.port, make_mail(headers=headers))
    assert reason in _no_ack_reason(settings_with_relay)
    wait_drained(settings_with_relay)  # an ack, had one been queued, would be out by now
    assert relay.received == []


def test_auto_submitted_no_is_a_person_and_gets_an_ack(
    daemon: DaemonThread, relay: RelaySink
) -> None:
    send(daemon.port, make_mail(headers={"Auto-Submitted": "no"}))
    assert len(relay.wait_for(1)) == 1


def test_mail_from_mailer_daemon_is_not_acknowledged(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    send(daemon.port, make_mail(sender="MAILER-DAEMON@mx.customer.test"), sender="")
    reason = _no_ack_reason(settings_with_relay)
    assert "delivery status notification" in reason or "null envelope" in reason
    wait_drained(settings_with_relay)
    assert relay.received == []


def _bounce_of(original: bytes, message_id: bytes) -> bytes:
    """A DSN (RFC 3464) returning `original`, as an MTA sends it with a null sender."""
    return (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>\r\n"
        b"To: support@example.test\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: " + message_id + b"\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.customer.test\r\n\r\n"
        b"Final-Recipient: rfc822; carol@customer.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"\r\n--B\r\nContent-Type: message/rfc822\r\n\r\n"
    ) + original + b"\r\n--B--\r\n"


def test_a_bounce_of_our_acknowledgement_is_recorded_on_its_ticket(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    send(daemon.port, make_mail())
    ack = relay.wait_for(1)[0]
    send(daemon.port, _bounce_of(ack.raw, b"<bounce-1@mx.customer.test>"), sender="")
    ticket = wait_until(lambda: [t for t in all_tickets(settings_with_relay)
                                 if len(t["messages"]) == 2], what="bounce on HD-1")[0]
    assert ticket["id"] == "HD-1"
    assert ticket["messages"][1]["threaded_by"].startswith("bounce of <")
    assert ticket["messages"][1]["visibility"] == "internal"  # not a customer reply
    assert any(e["kind"] == "bounce" for e in ticket["events"])
    assert ticket["status"] == "new"
    assert len(all_tickets(settings_with_relay)) == 1
    wait_drained(settings_with_relay)
    assert len(relay.received) == 1


def test_a_bounce_on_a_closed_ticket_stays_on_it_and_opens_nothing(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    send(daemon.port, make_mail())
    ack = relay.wait_for(1)[0]
    with session_scope(engine_for(settings_with_relay)) as session:
        ticket = session.get(Ticket, 1)
        assert ticket is not None
        ticket.status = "closed"
    # the customer's mailbox is gone by the time the late bounce comes back
    send(daemon.port, _bounce_of(ack.raw, b"<bounce-2@mx.customer.test>"), sender="")
    ticket = wait_until(lambda: [t for t in all_tickets(settings_with_relay)
                                 if len(t["messages"]) == 2], what="bounce on HD-1")[0]
    assert ticket["status"] == "closed" and len(all_tickets(settings_with_relay)) == 1
    assert [e["kind"] for e in ticket["events"]].count("bounce") == 1
    wait_drained(settings_with_relay)
    assert len(relay.received) == 1  # nobody told, nothing acknowledged


def test_a_flood_of_new_mail_from_one_sender_gets_a_bounded_number_of_acks(
    make_settings, relay: RelaySink, start_daemon  # type: ignore[no-untyped-def]
) -> None:
    settings = make_settings({"helpdesk": {"ack_limit": 3},
                              "outgoing": {"relay_host": "127.0.0.1", "relay_port": relay.port}})
    d = start_daemon(settings)
    for i in range(5):
        send(d.port, make_mail(subject=f"question {i}"))
    wait_until(lambda: len(all_tickets(settings)) == 5, what="5 tickets")
    relay.wait_for(3)
    wait_drained(settings)
    assert len(relay.received) == 3
    assert "rate limit" in _no_ack_reason(settings, 5)


@pytest.mark.parametrize("desk", [{"helpdesk": {"autoreply_limit": 5}}], indirect=True)
def test_our_own_automatic_mails_do_not_use_up_a_customers_acknowledgements(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    _, daemon = desk
    for i in range(1, 5):
        send(daemon.port, make_mail(subject=f"Problem {i}"))
        wait_mails_to(relay, CAROL, i)
    # alice closes two of them: carol is told, by two more automatic mails
    for number in (1, 2):
        note = next(m for m in mails_to(relay, "alice@staff.test")
                    if f"[HD-{number}]" in str(m["Subject"]))
        send(daemon.port, agent_mails.gmail(typed="#close", sender="alice@staff.test",
                                            to=reply_to(note), original=note),
             sender="alice@staff.test", rcpts=[reply_to(note)])
    wait_mails_to(relay, CAROL, 6)
    assert sum(m["Auto-Submitted"] == "auto-replied" for m in mails_to(relay, CAROL)) == 6

    # within the hour carol has a genuinely new problem: she hears it arrived
    send(daemon.port, make_mail(subject="The scanner is broken too"))
    ack = wait_mails_to(relay, CAROL, 7)[6]
    assert "[HD-5]" in str(ack["Subject"])


def _answer_to(ack: EmailMessage) -> EmailMessage:
    """What an autoresponder that ignores Auto-Submitted sends back: a plain reply."""
    return make_mail(subject=f"Re: {ack['Subject']}", body="I am away until Monday.",
                     in_reply_to=str(ack["Message-ID"]))


def test_answers_to_our_automatic_mail_are_acknowledged_a_few_times_an_hour(
    make_settings, relay: RelaySink, start_daemon  # type: ignore[no-untyped-def]
) -> None:
    settings = make_settings({"helpdesk": {"autoreply_limit": 2},
                              "outgoing": {"relay_host": "127.0.0.1", "relay_port": relay.port}})
    d = start_daemon(settings)
    for i in range(3):
        send(d.port, make_mail(subject=f"question {i}"))
    acks = [email.message_from_bytes(r.raw, policy=email.policy.default)
            for r in relay.wait_for(3)]
    with session_scope(engine_for(settings)) as session:
        for number in (1, 2, 3):
            ticket = session.get(Ticket, number)
            assert ticket is not None
            ticket.status = "closed"
    # each answer to an ack of a closed ticket opens a new one, and looks like a loop
    for ack in acks:
        send(d.port, _answer_to(ack))  # type: ignore[arg-type]
    wait_until(lambda: len(all_tickets(settings)) == 6, what="6 tickets")
    relay.wait_for(5)
    wait_drained(settings)
    assert len(relay.received) == 5
    assert "rate limit" in _no_ack_reason(settings, 6)
    assert [r.kind for r in outbox_rows(settings)].count("ack-of-answer") == 2


def test_two_helpdesks_acknowledging_each_other_do_not_loop(
    make_settings, tmp_path, start_daemon  # type: ignore[no-untyped-def]
) -> None:
    from tests.helpers import free_port

    port_a, port_b = free_port(), free_port()
    a = make_settings({
        "helpdesk": {"address": "support@a.test", "domains": ["a.test"],
                     "data_dir": str(tmp_path / "a")},
        "smtp": {"port": port_a},
        "outgoing": {"relay_host": "127.0.0.1", "relay_port": port_b},
    }, name="a")
    b_url = f"sqlite:///{tmp_path / 'b' / 'helpdesk.db'}"
    b = make_settings({
        "helpdesk": {"address": "support@b.test", "domains": ["b.test"],
                     "data_dir": str(tmp_path / "b"), "database_url": b_url},
        "smtp": {"port": port_b},
        "outgoing": {"relay_host": "127.0.0.1", "relay_port": port_a},
    }, name="b")
    start_daemon(a)
    start_daemon(b)
    # B writes to A, as if a person had; A's ack goes to B, whose ack would go to A...
    send(port_a, make_mail(sender="support@b.test", to="support@a.test"),
         sender="support@b.test", rcpts=["support@a.test"])
    wait_until(lambda: len(all_tickets(b)) == 1, what="A's ack arriving at B")
    # B has stored A's ack and sent whatever it queued; A has taken whatever B sent
    wait_until(lambda: drained(b) and drained(a), what="both helpdesks done")
    assert len(all_tickets(a)) == 1
    assert len(all_tickets(b)) == 1
    assert [r.kind for r in outbox_rows(a)] == ["ack"]
    assert outbox_rows(b) == []
    assert "Auto-Submitted" in _no_ack_reason(b)
