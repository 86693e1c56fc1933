"""A customer's mail over real SMTP becomes a ticket, and the acknowledgement threads."""

from __future__ import annotations

import email.policy
import smtplib

import pytest

from helpdesk.config.settings import Settings
from tests.helpers import (
    DaemonThread,
    RelaySink,
    all_messages,
    all_tickets,
    make_mail,
    send,
    wait_until,
)


def test_a_customers_mail_becomes_hd_1_and_gets_an_acknowledgement(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    mail = make_mail(message_id="<first@customer.test>")
    send(daemon.port, mail)

    acks = relay.wait_for(1)
    tickets = all_tickets(settings_with_relay)
    assert [t["id"] for t in tickets] == ["HD-1"]
    ticket = tickets[0]
    assert ticket["subject"] == "Printer on fire"
    assert ticket["status"] == "new"
    assert ticket["customer"] == "carol@customer.test"
    assert ticket["messages"][0]["body_text"] == "Help, the printer is on fire."
    assert ticket["messages"][0]["threaded_by"] == "new"

    ack = acks[0].message
    assert acks[0].rcpt_tos == ["carol@customer.test"]
    assert acks[0].mail_from == "<>"  # RFC 3834: null envelope sender for automatic replies
    assert ack["Subject"] == "[HD-1] Printer on fire"
    assert ack["In-Reply-To"] == "<first@customer.test>"
    assert "<first@customer.test>" in ack["References"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["Message-ID"].endswith("@example.test>")
    assert ack["Reply-To"].startswith("support+hd-1-")
    assert "HD-1" in ack.get_body(("plain",)).get_content()
    assert [e["kind"] for e in ticket["events"]] == ["created", "ack"]


def test_a_recipient_outside_our_domains_is_refused_with_550(daemon: DaemonThread) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.port) as client:
        client.ehlo()
        client.mail("carol@customer.test")
        code, reply = client.rcpt("someone@elsewhere.test")
    assert code == 550
    assert b"not accepted" in reply


def test_an_oversized_mail_is_refused_with_552(make_settings, relay, start_daemon) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings({"smtp": {"max_message_size": 2000}})
    d = start_daemon(settings)
    big = make_mail(body="x" * 5000).as_bytes(policy=email.policy.SMTP)
    # a client that declares SIZE is refused at MAIL FROM
    with pytest.raises(smtplib.SMTPSenderRefused) as err, \
            smtplib.SMTP("127.0.0.1", d.port) as client:
        client.sendmail("carol@customer.test", ["support@example.test"], big)
    assert err.value.smtp_code == 552
    # one that does not is refused after DATA
    with smtplib.SMTP("127.0.0.1", d.port) as client:
        client.ehlo()
        assert client.mail("carol@customer.test")[0] == 250
        assert client.rcpt("support@example.test")[0] == 250
        code, _ = client.data(big)
    assert code == 552
    assert all_tickets(settings) == []


def test_a_spool_that_cannot_be_written_answers_451(make_settings, start_daemon) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings()
    d = start_daemon(settings)
    tmp = settings.data_dir / "spool" / "tmp"
    tmp.rmdir()
    tmp.write_text("not a directory: writes here fail")
    with pytest.raises(smtplib.SMTPDataError) as err, \
            smtplib.SMTP("127.0.0.1", d.port) as client:
        raw = make_mail().as_bytes(policy=email.policy.SMTP)
        client.sendmail("carol@customer.test", ["support@example.test"], raw)
    assert err.value.smtp_code == 451


def test_a_mail_to_two_of_our_addresses_is_one_message(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    mail = make_mail(to="support@example.test", cc="billing@example.test")
    send(daemon.port, mail, rcpts=["support@example.test", "billing@example.test"])
    relay.wait_for(1)
    assert len(all_messages(settings_with_relay)) == 1
    assert all_tickets(settings_with_relay)[0]["queue"] == "support"


def test_mail_to_the_billing_address_lands_in_the_billing_queue(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    send(daemon.port, make_mail(to="billing@example.test"), rcpts=["billing@example.test"])
    relay.wait_for(1)
    assert all_tickets(settings_with_relay)[0]["queue"] == "billing"


def test_eight_bit_and_smtputf8_mail_keeps_its_text(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    raw = (
        "From: Jürgen Müller <jürgen@müller.test>\r\n"
        "To: support@example.test\r\n"
        "Subject: Grüße aus Köln – Drucker kaputt\r\n"
        "Message-ID: <utf8-1@müller.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "Der Drucker druckt nur noch Ä, Ö und Ü.\r\n"
    ).encode()
    with smtplib.SMTP("127.0.0.1", daemon.port) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        client.sendmail("jürgen@müller.test", ["support@example.test"], raw,
                        mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    acks = relay.wait_for(1)
    ticket = all_tickets(settings_with_relay)[0]
    assert ticket["subject"] == "Grüße aus Köln – Drucker kaputt"
    assert ticket["messages"][0]["body_text"] == "Der Drucker druckt nur noch Ä, Ö und Ü."
    assert ticket["customer"] == "jürgen@müller.test"
    assert acks[0].message["Subject"] == "[HD-1] Grüße aus Köln – Drucker kaputt"


def test_the_daemon_stops_cleanly_and_keeps_spooled_mail(
    make_settings, start_daemon  # type: ignore[no-untyped-def]
) -> None:
    settings = make_settings()
    d = start_daemon(settings)
    for i in range(5):
        send(d.port, make_mail(subject=f"mail {i}"))
    d.stop()
    wait_until(lambda: len(all_tickets(settings)) == 5 or
               list((settings.data_dir / "spool" / "incoming").iterdir()), what="tickets or spool")
    spooled = list((settings.data_dir / "spool" / "incoming").iterdir())
    assert len(all_tickets(settings)) + len(spooled) == 5


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_stopped_daemon_leaves_no_batch_connection_open(
    daemon: DaemonThread, relay: RelaySink
) -> None:
    """SQLite's batches run on an engine of their own; stopping the daemon closes it (a
    process that starts and stops daemons, like the tests, kept every one's file open)."""
    send(daemon.port, make_mail())
    relay.wait_for(1)
    writer = daemon.daemon.pipeline.writer
    assert writer is not daemon.daemon.engine and writer.pool.checkedin() == 1  # type: ignore[attr-defined]
    daemon.stop()
    assert writer.pool.checkedin() == 0  # type: ignore[attr-defined]
