"""The same mail delivered twice is stored once; different mails are never merged."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from helpdesk.config.settings import Settings
from helpdesk.ingest.imap import ImapPoller
from helpdesk.spool import Spool
from helpdesk.store import queries
from helpdesk.store.db import session_scope
from helpdesk.store.models import Quarantine
from tests.dovecot import Account, imap_entry
from tests.helpers import (
    DaemonThread,
    RelaySink,
    all_messages,
    all_tickets,
    engine_for,
    make_mail,
    run_cli,
    run_pipeline,
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


# -- different mails are never merged, whatever their shape ------------------------------


def _zip(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), text)
    return buffer.getvalue()


def _pdf(text: str) -> bytes:
    return (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Title (" + text.encode()
            + b") >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")


def _kept(settings: Settings) -> tuple[list[dict[str, Any]], list[Quarantine]]:
    """The messages stored and the mails held in quarantine."""
    with session_scope(engine_for(settings)) as session:
        held = queries.quarantined(session)
    return all_messages(settings), held


def test_two_alerts_without_a_blank_line_after_the_subject_are_two_tickets(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings
) -> None:
    # a monitoring script: no blank line between its one header and the body
    send(daemon.port, b"Subject: disk space\nweb1 is 91% full\n", sender="monitor@ops.test")
    send(daemon.port, b"Subject: disk space\ndb2 is 99% full\n", sender="monitor@ops.test")
    wait_until(lambda: len(all_messages(settings_with_relay)) == 2, what="two messages")
    bodies = sorted(m["body_text"] for m in all_messages(settings_with_relay))
    assert bodies == ["db2 is 99% full", "web1 is 91% full"]
    assert len(all_tickets(settings_with_relay)) == 2


# Each differs from all the others; some are mail (tickets), some are not (quarantine).
MALFORMED_BY_SMTP = [
    b"one line",
    b"another line",
    b"Subject: disk space\nweb1 is 91% full\n",
    b"Subject: disk space\ndb2 is 99% full\n",
    b"From: monitor@ops.test\nTo: support@example.test\nSubject: load\nload is 12",
    b"From: monitor@ops.test\nTo: support@example.test\nSubject: load\nload is 13",
    b"Some prose first.\n\nAnd no header anywhere.\n",
    b"Other prose first.\n\nAnd no header anywhere either.\n",
    b"\nA blank line, then text.\n",
    b"Host: web1\nDisk: 91%\n",
    b"Host: db2\nDisk: 99%\n",
    # no Message-ID, and only a field of the script's own tells them apart
    b"Subject: disk space\nX-Host: web1\n\nA disk is full.\n",
    b"Subject: disk space\nX-Host: db2\n\nA disk is full.\n",
]
MALFORMED_BY_INGEST = [
    b"one line, piped",
    _zip("report.txt", "quarterly figures"),
    _zip("report.txt", "monthly figures"),
    _pdf("invoice 1"),
    _pdf("invoice 2"),
    b"\x00\x00\x00\x01binary\x00\x02data\x00" * 4,
    b"\x00\x00\x00\x01binary\x00\x03data\x00" * 4,
    b"From: a@customer.test\nSubject: nul\n\nbody with a \x00 byte\n",
    b"From: a@customer.test\nSubject: nul\n\nbody with two \x00\x00 bytes\n",
]


def test_every_different_malformed_mail_that_got_250_is_a_ticket_or_quarantined(
    daemon: DaemonThread, settings_with_relay: Settings
) -> None:
    for raw in MALFORMED_BY_SMTP:
        send(daemon.port, raw)  # smtplib raises unless the listener said 250
    for raw in MALFORMED_BY_INGEST:
        result = run_cli(settings_with_relay, "ingest", stdin=raw)
        assert result.returncode == 0, result.stderr.decode()
        assert b"duplicate" not in result.stdout, (raw, result.stdout)
    expected = len(MALFORMED_BY_SMTP) + len(MALFORMED_BY_INGEST)
    wait_until(lambda: sum(map(len, _kept(settings_with_relay))) >= expected,
               what=f"{expected} messages or quarantined mails")
    stored, held = _kept(settings_with_relay)
    assert len(stored) + len(held) == expected
    assert all(q.reason for q in held)


def test_a_one_liner_piped_after_another_was_quarantined_is_quarantined_too(
    settings_with_relay: Settings,
) -> None:
    first = run_cli(settings_with_relay, "ingest", stdin=b"first line")
    assert b"quarantined" in first.stdout and b"Q1:" in first.stdout, first.stdout
    second = run_cli(settings_with_relay, "ingest", stdin=b"one line")
    assert second.returncode == 0
    assert b"quarantined" in second.stdout and b"Q2:" in second.stdout, second.stdout
    # the very same bytes again are a duplicate, and say of what
    again = run_cli(settings_with_relay, "ingest", stdin=b"one line")
    assert b"duplicate" in again.stdout and b"Q2" in again.stdout
    assert b"duplicate of quarantined Q2" in again.stderr


def test_a_duplicate_is_logged_with_the_message_and_ticket_it_duplicates(
    settings_with_relay: Settings,
) -> None:
    mail = make_mail(message_id="<logged@customer.test>").as_bytes()
    assert run_cli(settings_with_relay, "ingest", stdin=mail).returncode == 0
    again = run_cli(settings_with_relay, "ingest", stdin=b"Received: from mx2\n" + mail)
    assert again.returncode == 0
    assert b"duplicate HD-1 duplicate of message 1 on HD-1" in again.stdout
    assert b"duplicate of message 1 on HD-1" in again.stderr  # the log line
    assert len(all_messages(settings_with_relay)) == 1


@pytest.mark.dovecot
def test_an_alert_without_a_head_delivered_by_ingest_and_imap_is_one_message(
    settings_with_relay: Settings, imap_account: Account, tmp_path: Path
) -> None:
    alert = b"Subject: disk space\r\nweb1 is 91% full\r\n"
    assert b"stored" in run_cli(settings_with_relay, "ingest", stdin=alert).stdout
    # the copy in the mailbox went through the local delivery agent, which adds trace fields
    imap_account.append(b"Return-Path: <monitor@ops.test>\r\nDelivered-To: support@example.test"
                        b"\r\nReceived: from ops.test by mx; Mon, 1 Jan 2026\r\n" + alert)
    imap_account.append(b"Subject: disk space\r\ndb2 is 99% full\r\n")
    spool = Spool(tmp_path / "imap-spool")
    poller = ImapPoller(imap_entry(imap_account), spool, None, tmp_path / "imap-state")
    poller.start()
    try:
        wait_until(lambda: poller.status().spooled >= 2, what="two mails spooled")
    finally:
        poller.stop()
        poller.join(15)
    outcomes = run_pipeline(settings_with_relay, spool)
    assert sorted(o.kind for o in outcomes) == ["duplicate", "stored"]
    assert sorted(m["body_text"] for m in all_messages(settings_with_relay)) == [
        "db2 is 99% full", "web1 is 91% full"]
