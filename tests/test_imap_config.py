"""[[imap]] config validation and XOAUTH2 token handling (no server needed)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from helpdesk.config import settings as config
from helpdesk.errors import ConfigError
from helpdesk.ingest.imap_connect import LoginFailed, TokenSource, parse_token

ISSUE_EXAMPLE = """
[[imap]]
name = "support"
host = "imap.example.test"
port = 993
security = "ssl"
username = "support@example.test"
password_env = "HELPDESK_IMAP_PASSWORD"
folder = "INBOX"
after = "move"            # or "flag" or "delete"
move_to = "Processed"
queue = "support"
"""


def _entry(**changes: object) -> dict[str, object]:
    base = tomllib.loads(ISSUE_EXAMPLE)["imap"][0]
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def _error(**changes: object) -> str:
    with pytest.raises(ConfigError) as info:
        config.parse({"imap": [_entry(**changes)]}, Path("h.toml"))
    return str(info.value)


def test_issue_example_works_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = config.parse(tomllib.loads(ISSUE_EXAMPLE)).imap[0]
    assert (entry.name, entry.port, entry.security, entry.after) == ("support", 993, "ssl", "move")
    assert entry.idle and entry.batch_size == 100 and entry.stall_alert_after == 900
    monkeypatch.setenv("HELPDESK_IMAP_PASSWORD", "s3cret")
    assert entry.secret() == "s3cret"
    monkeypatch.delenv("HELPDESK_IMAP_PASSWORD")
    with pytest.raises(ConfigError, match=r"\$HELPDESK_IMAP_PASSWORD is empty or unset"):
        entry.secret()


def test_default_port_follows_security() -> None:
    assert config.parse({"imap": [_entry(port=None)]}).imap[0].port == 993
    assert config.parse({"imap": [_entry(port=None, security="starttls")]}).imap[0].port == 143


def test_plain_imap_only_on_loopback() -> None:
    assert _error(security="none").startswith("h.toml: imap.0.security: ")
    for host in ("127.0.0.1", "localhost", "::1"):
        assert config.parse({"imap": [_entry(security="none", host=host)]}).imap


@pytest.mark.parametrize(("changes", "key"), [
    ({"port": 70000}, "imap.0.port"),
    ({"after": "archive"}, "imap.0.after"),
    ({"idle_refresh": 1800}, "imap.0.idle_refresh"),
    ({"idle_refresh": 1000}, "imap.0.stall_alert_after"),
    ({"batch_size": 0}, "imap.0.batch_size"),
    ({"colour": "blue"}, "imap.0.colour"),
    ({"password": "x"}, "imap.0"),
])
def test_errors_name_the_key(changes: dict[str, object], key: str) -> None:
    assert _error(**changes).startswith(f"h.toml: {key}: ")


def test_exactly_one_credential() -> None:
    assert "give exactly one of password" in _error(password_env="", password=None)


def test_duplicate_names_rejected() -> None:
    with pytest.raises(ConfigError, match="duplicate mailbox name"):
        config.parse({"imap": [_entry(), _entry()]})


def test_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    entry = config.parse({"imap": [_entry(password_env="", password_file=str(secret))]}).imap[0]
    assert entry.secret() == "from-file"


def test_token_parsing() -> None:
    assert parse_token("abc\n") == ("abc", 3000.0)
    assert parse_token('{"access_token": "t", "expires_in": 60}') == ("t", 60.0)
    with pytest.raises(LoginFailed):
        parse_token('{"nope": 1}')


def test_token_refreshed_before_expiry(tmp_path: Path) -> None:
    now = [0.0]
    script = tmp_path / "token.py"
    script.write_text('print(\'{"access_token": "t", "expires_in": 600}\')\n')
    tokens = TokenSource(f"{sys.executable} {script}", monotonic=lambda: now[0])
    assert tokens.token() == "t" and tokens.fetches == 1
    now[0] = 400.0
    tokens.token()
    assert tokens.fetches == 1  # still valid beyond the margin
    now[0] = 490.0
    tokens.token()
    assert tokens.fetches == 2  # within TOKEN_MARGIN of expiry: fetched afresh
    tokens.invalidate()
    tokens.token()
    assert tokens.fetches == 3


def test_token_command_failure_is_a_login_failure() -> None:
    tokens = TokenSource(f"{sys.executable} -c 'import sys; sys.exit(\"consent revoked\")'")
    with pytest.raises(LoginFailed, match="exited 1: consent revoked"):
        tokens.token()
