"""`helpdesk imap check [NAME]` against the test Dovecot: output and exit codes."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from helpdesk.__main__ import cli
from helpdesk.commands.imap import COMMANDS
from tests.dovecot import Account, make_mail

pytestmark = pytest.mark.dovecot


@pytest.fixture
def run_check(tmp_path: Path):
    def run(account: Account, *args: str, **extra: str) -> click.testing.Result:
        entry = {"name": "support", "host": "127.0.0.1", "port": account.server.imap_port,
                 "security": "none", "username": account.username,
                 "password": account.password, **extra}
        body = "".join(f"{k} = {v!r}\n" if isinstance(v, str) else f"{k} = {v}\n"
                       for k, v in entry.items())
        cfg = tmp_path / "helpdesk.toml"
        cfg.write_text(f"[helpdesk]\ndata_dir = '{tmp_path / 'data'}'\n\n[[imap]]\n{body}")
        for command in COMMANDS:
            cli.add_command(command)
        return CliRunner().invoke(cli, ["--config", str(cfg), "imap", "check", *args])
    return run


def test_check_reports_waiting_mails_and_idle(imap_account: Account, run_check) -> None:
    imap_account.append(make_mail(1), make_mail(2))
    result = run_check(imap_account)
    assert result.exit_code == 0, result.output
    assert "support: OK" in result.output
    assert "2 waiting of 2" in result.output and "IDLE offered" in result.output
    assert "'Processed' (will be created)" in result.output


def test_check_wrong_password_fails_with_reason(imap_account: Account, run_check) -> None:
    result = run_check(imap_account, password="wrong")
    assert result.exit_code == 1
    assert "support: FAILED: login as" in result.output and "refused" in result.output


def test_check_missing_folder_lists_folders(imap_account: Account, run_check) -> None:
    result = run_check(imap_account, folder="Nope")
    assert result.exit_code == 1
    assert "folder 'Nope' not found (folders: INBOX)" in result.output


def test_check_unknown_name(imap_account: Account, run_check) -> None:
    result = run_check(imap_account, "other")
    assert result.exit_code == 1
    assert "no [[imap]] mailbox named 'other' (configured: support)" in result.output


def test_check_closed_port(imap_account: Account, run_check) -> None:
    from tests.dovecot import free_port

    result = run_check(imap_account, port=free_port())
    assert result.exit_code == 1 and "connection refused" in result.output
