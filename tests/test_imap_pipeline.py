"""IMAP end to end: Dovecot -> poller -> spool -> pipeline -> ticket, and no duplicate after
a crash between the commit and the MOVE."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from helpdesk.config.imap import ImapSection
from helpdesk.ingest.imap import ImapPoller, default_state_dir
from helpdesk.spool import Spool
from helpdesk.store import db
from tests.conftest import MakeSettings
from tests.dovecot import Account, imap_entry, make_mail
from tests.helpers import all_tickets, run_pipeline, wait_until

pytestmark = pytest.mark.dovecot


def _run_poller_until(entry: ImapSection, spool: Spool, state_dir: Path, count: int) -> None:
    poller = ImapPoller(entry, spool, None, state_dir)
    poller.start()
    try:
        wait_until(lambda: poller.status().spooled >= count, what=f"{count} spooled")
        wait_until(lambda: poller.status().last_uid > 0, what="watermark")
    finally:
        poller.stop()
        poller.join(15)


def test_imap_mail_becomes_ticket_and_replay_after_crash_is_a_duplicate(
        imap_account: Account, make_settings: MakeSettings) -> None:
    settings = make_settings()
    db.upgrade(settings.database_url)
    spool = Spool(settings.data_dir / "spool")
    state_dir = default_state_dir(settings.data_dir)
    raw = make_mail(1, "e2e")
    imap_account.append(raw)

    start = time.monotonic()
    _run_poller_until(imap_entry(imap_account), spool, state_dir, 1)
    outcomes = run_pipeline(settings, spool)
    assert [o.kind for o in outcomes] == ["stored"]
    assert time.monotonic() - start < 5
    assert len(all_tickets(settings)) == 1
    wait_until(lambda: imap_account.count("Processed") == 1)

    # Crash window (simulated): the ticket is committed but MOVE and the state file
    # never happened. The same mail is back in INBOX and the poller forgot it.
    imap_account.append(raw)
    for path in state_dir.iterdir():
        path.unlink()
    _run_poller_until(imap_entry(imap_account), spool, state_dir, 1)
    assert [o.kind for o in run_pipeline(settings, spool)] == ["duplicate"]
    assert len(all_tickets(settings)) == 1
