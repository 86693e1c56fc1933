"""The daemon reads its [[imap]] mailboxes: mail becomes tickets, status shows the mailbox,
and a SIGKILL in the middle of a backlog neither loses nor doubles a mail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MakeSettings
from tests.dovecot import Account, make_mail
from tests.helpers import (
    all_messages,
    all_tickets,
    free_port,
    log_on_failure,
    run_cli,
    status_rows,
    wait_until,
)
from tests.procs import DaemonProc

pytestmark = pytest.mark.dovecot


def _imap(account: Account, **extra: Any) -> dict[str, Any]:
    return {"name": "support", "host": "127.0.0.1", "port": account.server.imap_port,
            "security": "none", "username": account.username, "password": account.password,
            "poll_interval": 0.5, "idle_refresh": 30, "backoff_max": 2, "timeout": 10,
            "queue": "billing", **extra}


def test_a_mail_in_the_mailbox_becomes_a_ticket_in_the_mailboxs_queue(
    imap_account: Account, make_settings: MakeSettings, start_daemon  # type: ignore[no-untyped-def]
) -> None:
    settings = make_settings({"imap": [_imap(imap_account)]})
    start_daemon(settings)
    imap_account.append(make_mail(1, "daemon"))
    ticket = wait_until(lambda: all_tickets(settings), timeout=40, what="ticket from IMAP")[0]
    assert ticket["queue"] == "billing"
    assert ticket["messages"][0]["route"] == "imap:support"
    wait_until(lambda: imap_account.count("Processed") == 1, what="mail moved to Processed")
    assert imap_account.count("INBOX") == 0
    def snapshot_shows_the_mail() -> bool:
        path = settings.data_dir / "status.json"
        return path.exists() and json.loads(path.read_text())["imap"][0]["spooled"] == 1

    wait_until(snapshot_shows_the_mail, timeout=40, what="status snapshot with the mailbox")
    result = run_cli(settings, "status", "--json")
    status = json.loads(result.stdout)
    box = status["daemon"]["imap"][0]
    assert box["name"] == "support" and box["connected"] and box["spooled"] == 1
    assert result.returncode == 0, result.stdout


def test_sigkill_while_working_a_backlog_loses_and_doubles_nothing(
    imap_account: Account, make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings({"imap": [_imap(imap_account, batch_size=20)],
                              "smtp": {"port": free_port()}})
    total = 150
    imap_account.append(*(make_mail(n, "kill") for n in range(total)))
    daemon = DaemonProc(settings, tmp_path / "daemon.log").spawn()

    def stored_at_least(n: int) -> bool:
        assert daemon.proc is not None
        if daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {daemon.proc.returncode}:\n{daemon.log()}")
        return len(all_messages(settings)) >= n

    try:
        with log_on_failure(daemon.log):
            wait_until(lambda: stored_at_least(30), timeout=60,
                       what="part of the backlog stored")
            daemon.kill()
            daemon.spawn()
            wait_until(lambda: stored_at_least(total), timeout=120,
                       what="the whole backlog stored")
            wait_until(lambda: imap_account.count("Processed") == total, timeout=30,
                       what="every mail moved")
    finally:
        code = daemon.terminate(30)
    assert code == 0, daemon.log()
    ids = [m["message_id"] for m in all_messages(settings)]
    assert len(ids) == total and len(set(ids)) == total
    assert imap_account.count("INBOX") == 0


def test_the_same_mail_through_smtp_and_imap_is_one_message(
    imap_account: Account, make_settings: MakeSettings, start_daemon  # type: ignore[no-untyped-def]
) -> None:
    from tests.helpers import send

    settings = make_settings({"imap": [_imap(imap_account)]})
    daemon = start_daemon(settings)
    raw = make_mail(7, "both-ways")
    send(daemon.port, raw)
    # the copy in the mailbox went through another hop that added its trace header
    imap_account.append(b"Received: from mx.example.test by imap; Mon, 1 Jan 2024\r\n" + raw)
    wait_until(lambda: imap_account.count("Processed") == 1, timeout=40,
               what="the IMAP copy handled")
    spool = settings.data_dir / "spool"
    wait_until(lambda: all_messages(settings) and not any(
        list((spool / d).iterdir()) for d in ("incoming", "work", "bundles")),
        timeout=40, what="both copies processed")
    assert len(all_messages(settings)) == 1
    assert len(all_tickets(settings)) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_backlog_fetched_while_the_database_is_away_shows_as_waiting_mail(
    imap_account: Account, make_settings: MakeSettings, start_daemon  # type: ignore[no-untyped-def]
) -> None:
    away = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/helpdesk"
    settings = make_settings({"imap": [_imap(imap_account)], "helpdesk": {"database_url": away}})
    imap_account.append(*(make_mail(n, "backlog") for n in range(5)))
    start_daemon(settings)
    wait_until(lambda: imap_account.count("Processed") == 5, timeout=40,
               what="the backlog spooled and moved")
    spool = settings.data_dir / "spool"
    # the pipeline cannot store, so the batch stays in its bundle file, unsplit
    assert list((spool / "bundles").iterdir()) and not list((spool / "incoming").iterdir())

    def snapshot_waiting() -> int | None:
        path = settings.data_dir / "status.json"
        return json.loads(path.read_text())["spool"]["waiting"] if path.exists() else None

    wait_until(lambda: snapshot_waiting() == 5, timeout=20, what="the snapshot counting them")
    result = run_cli(settings, "status")
    assert status_rows(result.stdout.decode())["spool"][1].startswith("5 waiting"), \
        result.stdout.decode()
    assert result.returncode == 1, "the database is away: that needs the admin"
