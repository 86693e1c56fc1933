"""The SMTP listener's limits, tried the way an outsider on the internet would: too many
recipients, too many connections, a session kept alive with NOOP; and the things it must
accept although they look odd: RCPT TO:<postmaster> and HTML mail with very long lines."""

from __future__ import annotations

import smtplib
import socket
import time
from collections.abc import Callable
from email.message import EmailMessage

import pytest

from helpdesk.config.settings import Settings
from tests.conftest import MakeSettings
from tests.helpers import DaemonThread, all_messages, all_tickets, make_mail, wait_until

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _reply(sock: socket.socket) -> bytes:
    """One SMTP reply (all its lines); b'' when the server closed the connection."""
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
        lines = data.split(b"\r\n")
        if len(lines) > 1 and len(lines[-2]) >= 4 and lines[-2][3:4] == b" ":
            return data


def test_more_than_100_recipients_in_one_transaction_get_452(
        make_settings: MakeSettings, start_daemon: Callable[..., DaemonThread]) -> None:
    daemon = start_daemon(make_settings())
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as client:
        client.ehlo()
        assert client.mail("carol@customer.test")[0] == 250
        codes = [client.rcpt(f"support+{n}@example.test")[0] for n in range(101)]
    assert codes[:100] == [250] * 100
    assert codes[100] == 452  # RFC 5321 4.5.3.1.8: the client sends the rest later


def test_connections_beyond_the_cap_get_421(
        make_settings: MakeSettings, start_daemon: Callable[..., DaemonThread]) -> None:
    daemon = start_daemon(make_settings({"smtp": {"max_connections": 2}}))
    held = [socket.create_connection(("127.0.0.1", daemon.port), timeout=10) for _ in range(2)]
    try:
        assert all(_reply(s).startswith(b"220") for s in held)
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as third:
            assert _reply(third).startswith(b"421")
            assert third.recv(100) == b""  # and closed
    finally:
        for s in held:
            s.close()
    # once the others have gone, a sender gets in again
    def greeted() -> bool:
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as s:
            return _reply(s).startswith(b"220")
    wait_until(greeted, what="a free connection slot")


def test_noop_cannot_keep_a_session_open_past_its_deadline(
        make_settings: MakeSettings, start_daemon: Callable[..., DaemonThread]) -> None:
    daemon = start_daemon(make_settings({"smtp": {"idle_timeout": 1.0,
                                                  "session_timeout": 2.0}}))
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as s:
        assert _reply(s).startswith(b"220")
        started = time.monotonic()
        last = b""
        while time.monotonic() - started < 8:
            try:
                s.sendall(b"NOOP\r\n")
            except OSError:
                break
            last = _reply(s)
            if not last.startswith(b"250"):
                break
            time.sleep(0.3)  # well inside the idle timeout every time
        assert last.startswith(b"421"), last
        assert time.monotonic() - started < 4


def test_noop_is_limited_per_session(
        make_settings: MakeSettings, start_daemon: Callable[..., DaemonThread]) -> None:
    daemon = start_daemon(make_settings())
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as client:
        codes = [client.noop()[0] for _ in range(21)]
    assert codes[:20] == [250] * 20 and codes[20] == 421


def test_mail_to_the_bare_postmaster_is_accepted_and_becomes_a_ticket(
        make_settings: MakeSettings, start_daemon: Callable[..., DaemonThread]) -> None:
    settings = make_settings()
    daemon = start_daemon(settings)
    mail = make_mail(to="postmaster", subject="Your server sends broken DSNs")
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as client:
        client.ehlo()
        assert client.mail("admin@customer.test")[0] == 250
        assert client.rcpt("<postmaster>")[0] == 250  # RFC 5321 4.5.1: must be accepted
        assert client.data(mail.as_bytes())[0] == 250
    tickets = wait_until(lambda: all_tickets(settings), what="the postmaster ticket")
    assert tickets[0]["subject"] == "Your server sends broken DSNs"
    assert tickets[0]["queue"] == settings.helpdesk.default_queue


def _html_mail_with_one_long_line(length: int) -> EmailMessage:
    mail = make_mail(subject="Newsletter-style HTML")
    cell = "<td style='padding:4px'>Order 4711</td>"
    html = "<html><body><table><tr>" + cell * (length // len(cell)) + "</tr></table></body></html>"
    mail.add_alternative(html, subtype="html", cte="8bit")  # one line, no folding
    return mail


def test_html_mail_with_lines_longer_than_998_is_stored_intact(
        make_settings: MakeSettings, start_daemon: Callable[..., DaemonThread]) -> None:
    settings = make_settings()
    daemon = start_daemon(settings)
    raw = _html_mail_with_one_long_line(50_000).as_bytes()
    longest = max(raw.split(b"\n"), key=len)
    assert len(longest) > 40_000
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as client:
        client.ehlo()
        client.mail("carol@customer.test")
        client.rcpt("support@example.test")
        code, reply = client.data(raw)
    assert code == 250, reply
    message = wait_until(lambda: all_messages(settings), what="the stored mail")[0]
    stored = (settings.data_dir / message["raw_path"]).read_bytes()
    assert longest.rstrip(b"\r") in stored


def test_a_line_longer_than_the_whole_size_limit_is_still_refused_by_size(
        make_settings: MakeSettings, start_daemon: Callable[..., DaemonThread]) -> None:
    settings: Settings = make_settings({"smtp": {"max_message_size": 20_000}})
    daemon = start_daemon(settings)
    raw = _html_mail_with_one_long_line(60_000).as_bytes()
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as client:
        client.ehlo()
        client.mail("carol@customer.test")
        client.rcpt("support@example.test")
        code, _ = client.data(raw)
    assert code in (500, 552)
    assert all_tickets(settings) == []
