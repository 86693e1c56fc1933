"""Damaged header blocks, end to end over SMTP: undeclared 8-bit names, stray carriage
returns, control characters in identifiers. Each mail still becomes what its sender
meant (the right name, subject, thread), the damage is recorded as a defect, and no
later mail on the ticket fails because of it."""

from __future__ import annotations

from sqlalchemy import text

from helpdesk.config.settings import Settings
from tests import agent_mails
from tests.agent_desk import body, msgid, reply_to, wait_mails_to
from tests.helpers import DaemonThread, RelaySink, engine_for, make_mail, send, wait_ticket

CAROL = "carol@customer.test"


def _raw(*lines: bytes, eol: bytes = b"\r\n") -> bytes:
    return eol.join(lines) + eol


def test_an_undeclared_latin1_name_is_greeted_correctly_and_recorded(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    # the mail program wrote its headers in the body's charset without saying so
    send(daemon.port, _raw(
        b"From: Fran\xe7oise Dupont <francoise@customer.test>",
        b"To: support@example.test",
        b"Subject: Pr\xe9sentation annul\xe9e",
        b"Message-ID: <latin1@customer.test>",
        b"MIME-Version: 1.0",
        b"Content-Type: text/plain; charset=iso-8859-1",
        b"Content-Transfer-Encoding: 8bit",
        b"",
        b"Bonjour, \xe7a ne marche plus.",
    ), sender="francoise@customer.test")
    ack = wait_mails_to(relay, "francoise@customer.test", 1)[0]
    assert body(ack).startswith("Hello Françoise Dupont,")
    assert "Présentation annulée" in body(ack)
    message = wait_ticket(settings, 1, lambda t: bool(t["messages"]), "the ticket")["messages"][0]
    assert message["from_name"] == "Françoise Dupont"
    assert message["subject"] == "Présentation annulée"
    assert message["body_text"] == "Bonjour, ça ne marche plus."
    assert any(d.startswith("Undeclared8bitHeader") for d in message["defects"])


def test_a_reply_with_a_stray_carriage_return_keeps_its_headers(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail())
    ack = wait_mails_to(relay, CAROL, 1)[0]
    # s-nail ended the To line with CR CR LF
    send(daemon.port, _raw(
        b"From: Carol Customer <carol@customer.test>",
        b"To: " + reply_to(ack).encode() + b"\r",
        b"Subject: Re: [HD-1] Printer on fire",
        b"Message-ID: <snail-reply@customer.test>",
        b"In-Reply-To: <" + msgid(ack).encode() + b">",
        b"Date: Fri, 04 Dec 2026 10:00:00 +0000",
        b"",
        b"It is still smoking.",
    ), rcpts=[reply_to(ack)])
    ticket = wait_ticket(settings, 1, lambda t: len(t["messages"]) == 2, "the reply on HD-1")
    reply = ticket["messages"][1]
    assert reply["subject"] == "Re: [HD-1] Printer on fire"
    assert reply["message_id"] == "snail-reply@customer.test"
    assert reply["to"] == [reply_to(ack)]
    assert reply["body_text"] == "It is still smoking."
    assert "StrayCarriageReturnInHead" in reply["defects"]


def test_clean_crlf_mails_over_smtp_have_no_defects(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    # SMTP delivers CRLF line ends: the CR of the head's last line end is no stray CR
    send(daemon.port, make_mail())
    wait_mails_to(relay, CAROL, 1)
    send(daemon.port, _raw(
        b"From: Carol Customer <carol@customer.test>",
        b"To: support@example.test",
        b"Subject: Toner low",
        b"Message-ID: <empty-field@customer.test>",
        b"Keywords:",
        b"X-Empty:",
        b"",
        b"The toner is low.",
    ))
    wait_mails_to(relay, CAROL, 2)
    first = wait_ticket(settings, 1, lambda t: bool(t["messages"]), "the first ticket")
    second = wait_ticket(settings, 2, lambda t: bool(t["messages"]), "the second ticket")
    assert first["messages"][0]["subject"] == "Printer on fire"
    assert first["messages"][0]["defects"] == []
    assert second["messages"][0]["subject"] == "Toner low"
    assert second["messages"][0]["defects"] == []


def test_control_characters_in_ids_break_neither_the_ticket_nor_the_agents_replies(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    # the first mail: a bare Message-ID with a vertical tab in it
    send(daemon.port, _raw(
        b"From: Carol Customer <carol@customer.test>",
        b"To: support@example.test",
        b"Subject: Printer on fire",
        b"Message-ID: first\x0bmail@customer.test",
        b"",
        b"Help, the printer is on fire.",
    ))
    ack = wait_mails_to(relay, CAROL, 1)[0]
    assert ack["In-Reply-To"] == "<firstmail@customer.test>"
    first = wait_ticket(settings, 1, lambda t: bool(t["messages"]), "HD-1")["messages"][0]
    assert first["message_id"] == "firstmail@customer.test"
    assert "ControlCharacterInIdentifier" in first["defects"]

    # a follow-up with a control character in its id and in its References
    send(daemon.port, _raw(
        b"From: Carol Customer <carol@customer.test>",
        b"To: " + reply_to(ack).encode(),
        b"Subject: Re: [HD-1] Printer on fire",
        b"Message-ID: <follow\x1cup@customer.test>",
        b"In-Reply-To: <" + msgid(ack).encode() + b">",
        b"References: <first\x0bmail@customer.test> <" + msgid(ack).encode() + b">",
        b"",
        b"Still burning.",
    ), rcpts=[reply_to(ack)])
    wait_ticket(settings, 1, lambda t: len(t["messages"]) == 2, "the follow-up on HD-1")

    # alice answers the notification of that follow-up from her mail program
    note = wait_mails_to(relay, "alice@staff.test", 2)[1]
    send(daemon.port, agent_mails.thunderbird(
        typed="Please pull the plug.", sender="Alice Agent <alice@staff.test>",
        to=reply_to(note), original=note), sender="alice@staff.test", rcpts=[reply_to(note)])
    answer = wait_mails_to(relay, CAROL, 2)[1]
    assert "Please pull the plug." in body(answer)
    assert answer["In-Reply-To"] == "<followup@customer.test>"
    assert "<firstmail@customer.test>" in answer["References"]


def test_an_id_stored_with_a_control_character_does_not_stop_an_agents_reply(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail(message_id="<stored@customer.test>"))
    note = wait_mails_to(relay, "alice@staff.test", 1)[0]
    # as an older version stored it: the control character kept in the Message-ID
    with engine_for(settings).begin() as conn:
        conn.execute(text("UPDATE message SET message_id = :bad"),
                     {"bad": "sto\x0bred@customer.test"})
    send(daemon.port, agent_mails.gmail(
        typed="Please pull the plug.", sender="Alice Agent <alice@staff.test>",
        to=reply_to(note), original=note), sender="alice@staff.test", rcpts=[reply_to(note)])
    answer = wait_mails_to(relay, CAROL, 2)[1]
    assert "Please pull the plug." in body(answer)
    assert answer["In-Reply-To"] == "<stored@customer.test>"
