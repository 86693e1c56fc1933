"""The same mail delivered twice is stored once; different mails are never merged."""

from __future__ import annotations

from helpdesk.config import Settings
from tests.helpers import (
    DaemonThread,
    RelaySink,
    all_messages,
    all_tickets,
    make_mail,
    run_cli,
    send,
    wait_until,
)


def test_the_same_mail_delivered_twice_is_one_message_and_one_ack(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    mail = make_mail(message_id="<twice@customer.test>")
    send(daemon.port, mail)
    relay.wait_for(1)
    raw = mail.as_bytes()
    # the second copy went through another hop: a new Received header, LF line ends
    send(daemon.port, b"Received: from relay2.customer.test by mx; Mon, 1 Jan 2026\r\n" + raw)
    wait_until(lambda: not list((settings_with_relay.data_dir / "spool" / "incoming").iterdir())
               and not list((settings_with_relay.data_dir / "spool" / "work").iterdir()),
               what="spool drained")
    assert len(all_messages(settings_with_relay)) == 1
    assert len(relay.received) == 1


def test_a_reused_message_id_with_different_content_keeps_both_mails(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    send(daemon.port, make_mail(message_id="<reused@customer.test>", body="first mail"))
    send(daemon.port, make_mail(message_id="<reused@customer.test>", subject="another topic",
                                body="second, different mail"))
    wait_until(lambda: len(all_messages(settings_with_relay)) == 2, what="two messages")
    bodies = sorted(m["body_text"] for m in all_messages(settings_with_relay))
    assert bodies == ["first mail", "second, different mail"]


def test_a_mail_through_smtp_and_ingest_is_one_message(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    mail = make_mail(message_id="<both-ways@customer.test>")
    send(daemon.port, mail)
    relay.wait_for(1)
    result = run_cli(settings_with_relay, "ingest", stdin=mail.as_bytes())
    assert result.returncode == 0, result.stderr.decode()
    assert b"duplicate" in result.stdout
    assert len(all_tickets(settings_with_relay)) == 1
    assert len(all_messages(settings_with_relay)) == 1
