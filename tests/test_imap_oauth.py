"""XOAUTH2 against a real Dovecot whose oauth2 passdb checks tokens at a loopback token server.

The poller gets its tokens the way Gmail and Microsoft 365 mailboxes are used
today: a configured command prints a fresh access token (tests/oauth.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest

from helpdesk.ingest.imap import ImapPoller
from helpdesk.spool import Spool
from tests.dovecot import Account, Dovecot, imap_entry, make_mail
from tests.oauth import TokenServer
from tests.tcpproxy import TcpProxy
from tests.test_imap_poller import wait_for, waiting

pytestmark = pytest.mark.dovecot
StartPoller = Callable[..., ImapPoller]


@pytest.fixture
def mailbox(oauth_dovecot: Dovecot, tokens: TokenServer) -> Account:
    return oauth_dovecot.add_user(tokens.username.split("@")[0])


@pytest.fixture
def proxy(oauth_dovecot: Dovecot) -> Iterator[TcpProxy]:
    """Between the poller and Dovecot, so a test can cut the connection."""
    p = TcpProxy(("127.0.0.1", oauth_dovecot.imap_port)).start()
    yield p
    p.stop()


def oauth_entry(mailbox: Account, tokens: TokenServer, proxy: TcpProxy, **overrides: object):
    return imap_entry(mailbox, port=proxy.port, password="", oauth2_command=tokens.command(),
                      backoff_max=1, **overrides)


def test_a_mailbox_reached_with_xoauth2_becomes_tickets(
        mailbox: Account, tokens: TokenServer, proxy: TcpProxy, spool: Spool,
        start_poller: StartPoller) -> None:
    mailbox.append(make_mail(1, "oauth"))
    poller = start_poller(oauth_entry(mailbox, tokens, proxy))
    wait_for(lambda: len(waiting(spool)) == 1)
    wait_for(lambda: mailbox.count("Processed") == 1)
    assert tokens.issued and tokens.checked[0] == (tokens.issued[0], True)
    assert poller.status().connected and poller.status().last_error is None


def test_a_token_about_to_expire_is_refreshed_before_the_next_login(
        mailbox: Account, tokens: TokenServer, proxy: TcpProxy, spool: Spool,
        start_poller: StartPoller) -> None:
    # TOKEN_MARGIN is 120 s: a 123 s token counts as due for refresh after 3 s
    tokens.lifetime = 123
    poller = start_poller(oauth_entry(mailbox, tokens, proxy))
    wait_for(lambda: poller.status().state == "idle")
    assert len(tokens.issued) == 1
    time.sleep(3.5)
    proxy.cut()  # the next login must not use the old token
    wait_for(lambda: len(tokens.checked) == 2, timeout=15)
    assert tokens.checked[1] == (tokens.issued[1], True)
    assert all(active for _, active in tokens.checked)
    mailbox.append(make_mail(2, "oauth"))
    wait_for(lambda: len(waiting(spool)) == 1, timeout=15)


def test_a_revoked_token_is_replaced_once_and_the_mailbox_goes_on(
        mailbox: Account, tokens: TokenServer, proxy: TcpProxy, spool: Spool,
        start_poller: StartPoller, caplog: pytest.LogCaptureFixture) -> None:
    poller = start_poller(oauth_entry(mailbox, tokens, proxy))
    wait_for(lambda: poller.status().state == "idle")
    tokens.revoke_all()  # e.g. the admin reset the app's grant; the cached one is dead
    proxy.cut()
    wait_for(lambda: len(tokens.issued) == 2, timeout=15)
    wait_for(lambda: poller.status().state == "idle", timeout=15)
    assert [active for _, active in tokens.checked] == [True, False, True]
    mailbox.append(make_mail(3, "oauth"))
    wait_for(lambda: len(waiting(spool)) == 1, timeout=15)
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert refused == []  # one stale token is no login failure worth an alarm


def test_a_token_provider_outage_alerts_the_admins_and_then_recovers(
        mailbox: Account, tokens: TokenServer, proxy: TcpProxy, spool: Spool,
        start_poller: StartPoller, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="helpdesk.ingest.imap")
    tokens.fail_token = True
    stalls: list[tuple[str, datetime, str]] = []
    mailbox.append(make_mail(4, "oauth"))
    poller = start_poller(oauth_entry(mailbox, tokens, proxy, stall_alert_after=1.5,
                                      poll_interval=1, idle_refresh=1),
                          on_stall=lambda *a: stalls.append(a))
    wait_for(lambda: stalls, timeout=10)
    assert len(stalls) == 1 and "oauth2_command exited" in stalls[0][2]
    assert poller.status().stalled_since is not None and not poller.status().healthy
    assert waiting(spool) == [] and mailbox.count("INBOX") == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR
              and "oauth2_command" in r.getMessage() and "not reached" not in r.getMessage()]
    assert len(errors) == 1  # logged once, then quietly retried with backoff
    tokens.fail_token = False
    wait_for(lambda: len(waiting(spool)) == 1, timeout=15)
    wait_for(lambda: poller.status().healthy)
    assert poller.status().stalled_since is None and len(stalls) == 1
