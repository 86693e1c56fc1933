"""Connect and log in to one configured IMAP mailbox; turn every failure into one clear line.

Shared by the poller (ingest/imap.py) and `helpdesk imap check`. Passwords come
from the config (inline, env or file); XOAUTH2 tokens from a configured command
that prints either a bare access token or JSON with access_token and expires_in.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable

from imapclient import IMAPClient
from imapclient.exceptions import (
    CapabilityError,
    IMAPClientAbortError,
    IMAPClientError,
    LoginError,
)

from helpdesk.config.imap import ImapSection
from helpdesk.errors import ConfigError, HelpdeskError

DEFAULT_TOKEN_LIFETIME = 3000.0  # seconds, when the command does not say (Google: 3600)
TOKEN_MARGIN = 120.0  # refresh this long before the token expires


class ImapFault(HelpdeskError):
    """A connection-level failure, already phrased for the log (without the mailbox name)."""


class LoginFailed(ImapFault):
    """Credentials refused or unavailable: retried only after a long wait."""


class TokenSource:
    """Runs the oauth2_command when no token is cached or the cached one is about to expire.

    Shared by a poller's connections (the main one and the backlog mover), so one lock
    keeps two logins from running the command at once.
    """

    def __init__(self, command: str, timeout: float = 30.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.command = command
        self.timeout = timeout
        self._monotonic = monotonic
        self._token = ""
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    @property
    def expires_at(self) -> float:
        return self._expires_at

    def token(self) -> str:
        with self._lock:
            if not self._token or self._monotonic() >= self._expires_at - TOKEN_MARGIN:
                self._token, lifetime = self._run()
                self._expires_at = self._monotonic() + lifetime
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = ""

    def _run(self) -> tuple[str, float]:
        self.fetches += 1
        try:
            done = subprocess.run(shlex.split(self.command), capture_output=True,
                                  timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise LoginFailed(f"oauth2_command failed: {err}") from None
        out = done.stdout.decode("utf-8", "replace").strip()
        if done.returncode or not out:
            err_text = done.stderr.decode("utf-8", "replace").strip().splitlines()
            why = err_text[-1] if err_text else "no token printed"
            raise LoginFailed(f"oauth2_command exited {done.returncode}: {why}")
        return parse_token(out)


def parse_token(out: str) -> tuple[str, float]:
    """A bare token, or JSON {"access_token": ..., "expires_in": seconds}."""
    if out.startswith("{"):
        try:
            data = json.loads(out)
            return str(data["access_token"]), float(data.get("expires_in",
                                                             DEFAULT_TOKEN_LIFETIME))
        except (ValueError, KeyError, TypeError) as err:
            raise LoginFailed(f"oauth2_command printed unusable JSON: {err}") from None
    return out.splitlines()[0].strip(), DEFAULT_TOKEN_LIFETIME


def ssl_context(entry: ImapSection) -> ssl.SSLContext:
    """System trust, plus exactly the CA file the config names (e.g. a self-signed cert)."""
    if entry.ca_file is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=str(entry.ca_file))
    except (OSError, ssl.SSLError) as err:
        raise ImapFault(f"ca_file {entry.ca_file} unusable: {describe(err)}") from None


def describe(err: BaseException) -> str:
    """One readable line for any connection, TLS or protocol error."""
    if isinstance(err, ssl.SSLCertVerificationError):
        return (f"TLS error: certificate not trusted ({err.verify_message}); "
                "set ca_file to trust a private CA")
    if isinstance(err, ssl.SSLError):
        return f"TLS error: {err.reason or err}"
    if isinstance(err, IMAPClientAbortError):
        return f"connection lost: {_text(err) or 'closed by server'}"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(err, OSError):
        return f"network error: {err.strerror or err}"
    if isinstance(err, IMAPClientError | ImapFault):
        return _text(err)
    return f"{type(err).__name__}: {err}"


def _text(err: BaseException) -> str:
    """imapclient errors often carry bytes reprs like "b'[AUTHENTICATIONFAILED] ...'"."""
    text = str(err)
    if text.startswith(("b'", 'b"')) and text.endswith(text[1]):
        text = text[2:-1]
    return text.replace("\\r\\n", " ").strip()


def connect(entry: ImapSection, tokens: TokenSource | None = None) -> IMAPClient:
    """An authenticated client, or ImapFault / LoginFailed with a readable reason."""
    where = f"{entry.host}:{entry.port}"
    tls = ssl_context(entry) if entry.security != "none" else None
    try:
        client = IMAPClient(entry.host, port=entry.port, ssl=entry.security == "ssl",
                            ssl_context=tls, timeout=entry.timeout)
    except (OSError, IMAPClientError) as err:
        raise ImapFault(f"cannot connect to {where}: {describe(err)}") from None
    keepalive(client.socket())
    try:
        if entry.security == "starttls":
            client.starttls(tls)
        login(client, entry, tokens)
    except CapabilityError:
        _close(client)
        raise ImapFault(f"{where} does not offer STARTTLS (use security = \"ssl\")") from None
    except (OSError, IMAPClientAbortError) as err:
        _close(client)
        raise ImapFault(f"{where}: {describe(err)}") from None
    except ImapFault:
        _close(client)
        raise
    return client


def keepalive(sock: socket.socket, idle: int = 60, interval: int = 15, count: int = 4) -> None:
    """TCP keepalives: a peer that vanished without a FIN (a NAT or firewall that forgot
    the connection) breaks the socket within about two minutes instead of leaving an
    IDLE waiting for a server that will never answer."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval),
                        ("TCP_KEEPCNT", count)):
        if hasattr(socket, name):  # Linux; elsewhere the system's defaults apply
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def login(client: IMAPClient, entry: ImapSection, tokens: TokenSource | None) -> None:
    user = entry.login_user
    try:
        if tokens is None:
            client.login(entry.username, entry.secret())
            return
        try:
            client.oauth2_login(user, tokens.token())
        except LoginError:
            tokens.invalidate()  # expired or revoked early: one fresh token, once
            client.oauth2_login(user, tokens.token())
    except LoginError as err:
        where = f"{entry.host}:{entry.port}"
        raise LoginFailed(f"login as {user} at {where} refused: {_text(err)}") from None
    except ConfigError as err:
        raise LoginFailed(str(err)) from None


def _close(client: IMAPClient) -> None:
    with contextlib.suppress(OSError, IMAPClientError):
        client.shutdown()


def logout(client: IMAPClient) -> None:
    """Log out politely; on a dead connection just drop the socket."""
    try:
        client.logout()
    except (OSError, IMAPClientError):
        _close(client)
