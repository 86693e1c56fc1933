"""Replies find their ticket: by subject tag, In-Reply-To/References and signed reply address."""

from __future__ import annotations

from helpdesk.config.settings import Settings
from tests.helpers import (
    DaemonThread,
    RelaySink,
    all_tickets,
    make_mail,
    send,
    wait_ticket,
    wait_until,
)


def _open_first_ticket(daemon: DaemonThread, relay: RelaySink) -> object:
    send(daemon.port, make_mail(message_id="<q1@customer.test>"))
    return relay.wait_for(1)[0].message


def _messages_of(settings: Settings, ticket_id: str, count: int) -> list[dict]:
    number = int(ticket_id.removeprefix("HD-"))
    return wait_ticket(settings, number, lambda t: len(t["messages"]) >= count,
                       f"{count} messages on {ticket_id}", timeout=10)["messages"]


def test_a_customers_second_mail_threads_onto_hd_1_by_the_subject_tag(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    _open_first_ticket(daemon, relay)
    send(daemon.port, make_mail(subject="Re: [HD-1] Printer on fire", body="Still burning."))
    messages = _messages_of(settings_with_relay, "HD-1", 2)
    assert messages[1]["threaded_by"] == "subject tag [HD-1]"
    assert len(all_tickets(settings_with_relay)) == 1
    assert len(relay.received) == 1  # follow-ups are not acknowledged again


def test_a_reply_to_the_acknowledgement_threads_by_in_reply_to(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    ack = _open_first_ticket(daemon, relay)
    reply = make_mail(subject="Re: something else entirely", body="More details.",
                      in_reply_to=ack["Message-ID"])
    send(daemon.port, reply)
    messages = _messages_of(settings_with_relay, "HD-1", 2)
    assert messages[1]["threaded_by"] == f"In-Reply-To {ack['Message-ID']}"


def test_references_to_the_customers_own_first_mail_thread_too(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    _open_first_ticket(daemon, relay)
    send(daemon.port, make_mail(subject="no tag", references="<q1@customer.test>"))
    messages = _messages_of(settings_with_relay, "HD-1", 2)
    assert messages[1]["threaded_by"] == "References <q1@customer.test>"


def test_a_mail_to_the_signed_reply_address_threads_without_tag_or_headers(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    ack = _open_first_ticket(daemon, relay)
    reply_to = ack["Reply-To"]
    send(daemon.port, make_mail(to=reply_to, subject="new words", body="via reply address"),
         rcpts=[reply_to])
    messages = _messages_of(settings_with_relay, "HD-1", 2)
    assert messages[1]["threaded_by"] == f"reply address {reply_to}"


def test_a_reply_address_with_a_wrong_token_is_ignored(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    _open_first_ticket(daemon, relay)
    forged = "support+hd-1-aaaaaaaaaaaa@example.test"
    send(daemon.port, make_mail(sender="mallory@evil.test", to=forged, subject="hi"),
         sender="mallory@evil.test", rcpts=[forged])
    tickets = wait_until(lambda: len(all_tickets(settings_with_relay)) == 2
                         and all_tickets(settings_with_relay), what="second ticket")
    assert tickets[1]["messages"][0]["threaded_by"].startswith("new (ignored")
    assert len(tickets[0]["messages"]) == 1


def test_a_stranger_typing_the_ticket_number_gets_a_new_ticket_linking_the_old(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    _open_first_ticket(daemon, relay)
    send(daemon.port, make_mail(sender="mallory@evil.test", subject="Re: [HD-1] give me data"),
         sender="mallory@evil.test")
    tickets = wait_until(lambda: len(all_tickets(settings_with_relay)) == 2
                         and all_tickets(settings_with_relay), what="second ticket")
    assert len(tickets[0]["messages"]) == 1
    assert tickets[1]["linked"] == "HD-1"
    assert "non-participant" in tickets[1]["messages"][0]["threaded_by"]


def test_someone_on_cc_of_the_conversation_may_use_the_tag(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    send(daemon.port, make_mail(cc="dave@customer.test"))
    relay.wait_for(1)
    send(daemon.port, make_mail(sender="dave@customer.test", subject="Re: [HD-1] Printer"),
         sender="dave@customer.test")
    messages = _messages_of(settings_with_relay, "HD-1", 2)
    assert messages[1]["from"] == "dave@customer.test"
