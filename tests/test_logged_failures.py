"""Where the daemon carries on past something damaged, it says so in the log: the
spool's unreadable envelopes and bundles, a rules context's unreadable arrival time,
an IMAP poller's unreadable state file."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpdesk import clock
from helpdesk.ingest.imap_state import MailboxState, StateFile
from helpdesk.rules import MailContext
from helpdesk.rules.facts import arrival
from helpdesk.spool import Envelope, Spool
from tests.rules_mail import mail

RAW = b"From: carol@customer.test\r\nSubject: hello\r\n\r\nbody\r\n"


def test_an_entry_without_a_readable_envelope_is_processed_whole_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / "spool")
    name = spool.put(RAW, Envelope(route="smtp"))
    (spool.incoming / name).write_bytes(b"{not json\n" + RAW)  # damaged on disk
    with caplog.at_level(logging.WARNING, logger="helpdesk.spool"):
        entry = spool.claim()
    assert entry is not None and entry.envelope.route == "unknown"
    assert entry.raw == b"{not json\n" + RAW  # nothing dropped
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith(f"spool entry {name} has no readable "
                                                   f"envelope (")
    assert lines[0].endswith("); processing the whole file as the mail")


def test_a_damaged_bundle_is_counted_as_far_as_readable_and_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / "spool")
    name = spool.put_bundle([(RAW, Envelope(route="imap:x")), (RAW, Envelope(route="imap:x"))])
    bundle = spool.bundles / name
    first_head = bundle.read_bytes().partition(b"\n")[0]
    bundle.write_bytes(first_head + b"\n" + RAW + b"\n" + b"garbage\n")
    with caplog.at_level(logging.WARNING, logger="helpdesk.spool"):
        assert spool.waiting() == 1
        assert spool.waiting() == 1  # the gauge is read every few seconds: one line
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith(
        f"spool bundle {name} is unreadable after 1 mails (JSONDecodeError: ")


def test_an_unreadable_arrival_time_becomes_now_with_a_warning_naming_the_mail(
        caplog: pytest.LogCaptureFixture) -> None:
    now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    clock.freeze(now)
    ctx = MailContext(mail=mail(), envelope=Envelope(route="smtp", received_at="yesterday"))
    with caplog.at_level(logging.WARNING, logger="helpdesk.rules"):
        assert arrival(ctx) == now
    assert [r.getMessage() for r in caplog.records] == [
        "message <test@example.org>: envelope received_at 'yesterday' is not a time; "
        "taking now as its arrival"]


def test_an_unreadable_imap_state_file_means_a_rescan_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "imap-support.json"
    path.write_text('{"uidvalidity": 7, "last_u')  # cut short
    with caplog.at_level(logging.WARNING, logger="helpdesk.ingest.imap"):
        assert StateFile(path, "support@imap.test:993/INBOX").load() == MailboxState()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith(f"imap state file {path} unreadable (")
    assert lines[0].endswith("); rescanning the mailbox")
