"""Shared pytest fixtures. Keep each group together and labelled."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/dovecot.py is a helper, not a package

from dovecot import Account, Dovecot, unavailable_reason

from helpdesk.config import ImapSection
from helpdesk.ingest.imap import ImapPoller
from helpdesk.spool import Spool

# --- IMAP: a real Dovecot on loopback (tests/dovecot.py) ------------------------------


def _need_dovecot() -> None:
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but Dovecot is unavailable: {reason}")
    pytest.skip(f"IMAP tests need Dovecot: {reason}")


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[Dovecot]:
    """One Dovecot for the session; each test gets its own user (see imap_account)."""
    _need_dovecot()
    server = Dovecot()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def own_dovecot() -> Iterator[Dovecot]:
    """A Dovecot of this test's own, for tests that stop and restart the server."""
    _need_dovecot()
    server = Dovecot()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def imap_account(dovecot_server: Dovecot) -> Account:
    return dovecot_server.add_user()


def imap_entry(account: Account, **overrides: Any) -> ImapSection:
    """An [[imap]] section for the account over plain IMAP on loopback, fast timings."""
    data: dict[str, Any] = {
        "name": "support", "host": "127.0.0.1", "port": account.server.imap_port,
        "security": "none", "username": account.username, "password": account.password,
        "poll_interval": 0.5, "idle_refresh": 30, "backoff_max": 2, "timeout": 10,
    }
    data.update(overrides)
    return ImapSection.model_validate(data)


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool")


@pytest.fixture
def start_poller(tmp_path: Path, spool: Spool) -> Iterator[Callable[..., ImapPoller]]:
    """Factory: start_poller(entry, **kwargs) -> a running ImapPoller, stopped at teardown."""
    running: list[ImapPoller] = []

    def start(entry: ImapSection, **kwargs: Any) -> ImapPoller:
        kwargs.setdefault("on_spooled", None)
        poller = ImapPoller(entry, spool, kwargs.pop("on_spooled"), tmp_path / "state",
                            **kwargs)
        poller.start()
        running.append(poller)
        return poller

    yield start
    for poller in running:
        poller.stop()
    for poller in running:
        poller.join(15)
