"""The survey pages as an outsider on the internet meets them: huge or endless POST bodies,
lying Content-Length, odd ids, tokens and forms, old links, a rating flipped back and
forth. Each is answered with a 4xx page, bounded in memory; never a 5xx."""

from __future__ import annotations

import http.client
import re
import select
import socket
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.survey import steps as survey
from tests.conftest import MakeSettings
from tests.helpers import DaemonThread, free_port
from tests.sched import at, mails, run_pass, with_agents
from tests.test_survey import closed_ticket, links, survey_row

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
SENT = at("2026-11-30T13:00")


@dataclass
class Surveyed:
    settings: Settings
    ticket: int
    token: str
    port: int

    def status(self, method: str, path: str, body: bytes | None = None,
               headers: dict[str, str] | None = None) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def rate(self, rating: str, comment: str = "") -> int:
        form = urllib.parse.urlencode({"t": self.token, "rating": rating, "comment": comment})
        return self.status("POST", f"/survey/{self.ticket}?t={self.token}", form.encode(),
                           {"Content-Type": "application/x-www-form-urlencoded"})


@pytest.fixture
def surveyed(make_settings: MakeSettings,
             start_daemon: Callable[..., DaemonThread]) -> Iterator[Surveyed]:
    """carol's ticket is closed and surveyed; the daemon serves the rating pages."""
    port = free_port()
    settings = with_agents(make_settings({"http": {"public": f"127.0.0.1:{port}"}, "survey": {
        "enabled": True, "delay": "1h"}}))
    tid = closed_ticket(settings)
    run_pass(settings, SENT)
    token = urllib.parse.parse_qs(urllib.parse.urlparse(links(settings)["1"]).query)["t"][0]
    start_daemon(settings)
    yield Surveyed(settings, tid, token, port)


# -- bodies ----------------------------------------------------------------------------

def _peak_rss_reset() -> bool:
    """Reset this process's peak RSS (the daemon runs in it); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]


def _stream_post(port: int, head: str, body_size: int, chunked: bool) -> tuple[bytes, int]:
    """Send a POST's head, then its body 8 KiB at a time until the server answers;
    returns the answer and how much of the body went out before it came."""
    chunk = b"r" * 8192
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        while sent < body_size:
            if select.select([sock], [], [], 0.005)[0]:
                break  # the server has answered: stop sending, as a browser would
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            except OSError:
                break
            sent += len(chunk)
        sock.settimeout(10)
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except (TimeoutError, ConnectionResetError):
            pass
    return answer, sent


MB = 1024 * 1024


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_huge_post_is_refused_with_413_without_being_read(surveyed: Surveyed,
                                                            chunked: bool) -> None:
    size = 64 * MB
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = (f"POST /survey/{surveyed.ticket}?t={surveyed.token} HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"{framing}\r\n\r\n")
    measured = _peak_rss_reset()
    before = _peak_rss()
    answer, sent = _stream_post(surveyed.port, head, size, chunked)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 1 * MB  # refused early, not after reading it all
    if measured:
        assert _peak_rss() - before < 16 * MB
    assert survey_row(surveyed.settings, surveyed.ticket).score is None


def test_a_post_with_a_forged_token_is_refused_before_its_body_is_read(
        surveyed: Surveyed) -> None:
    head = (f"POST /survey/{surveyed.ticket}?t=forgedforged HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Length: {64 * MB}\r\n\r\n")
    answer, sent = _stream_post(surveyed.port, head, 64 * MB, chunked=False)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert sent < 1 * MB


def test_a_content_length_that_lies_gets_no_5xx(surveyed: Surveyed) -> None:
    head = (f"POST /survey/{surveyed.ticket}?t={surveyed.token} HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nContent-Length: 40\r\n\r\n")
    answer, _ = _stream_post(surveyed.port, head, 4 * MB, chunked=False)
    statuses = re.findall(rb"^HTTP/1\.1 (\d{3})", answer, flags=re.M)
    assert statuses and all(s < b"500" for s in statuses), answer[:300]
    assert survey_row(surveyed.settings, surveyed.ticket).score is None  # 40 bytes: no rating


# -- odd input -------------------------------------------------------------------------

def test_odd_urls_and_forms_get_4xx_never_5xx(surveyed: Surveyed) -> None:
    tid, tok = surveyed.ticket, surveyed.token
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    big = "9" * 5000
    cases: list[tuple[str, str, bytes | None, dict[str, str], int]] = [
        ("GET", f"/survey/{tid}/1?t=%C3%A9t%C3%A9", None, {}, 403),  # non-ASCII token
        ("GET", f"/survey/{tid}/1?t=%FF%FE", None, {}, 403),  # not even UTF-8
        ("GET", f"/survey/{big}/1?t={tok}", None, {}, 404),  # 5,000 digits
        ("POST", f"/survey/{big}?t={tok}", b"rating=1", form, 404),
        ("POST", f"/survey/{big}", f"t={tok}&rating=1".encode(), form, 404),
        ("GET", f"/survey/{2**31 - 1}/1?t={tok}", None, {}, 403),  # the token is for tid
        ("GET", f"/survey/{2**63}/1?t={tok}", None, {}, 404),
        ("GET", f"/survey/%EF%BC%91/1?t={tok}", None, {}, 404),  # a full-width digit one
        ("GET", f"/survey/-1/1?t={tok}", None, {}, 404),
        ("GET", f"/survey/{tid}/{'x' * 3000}?t={tok}", None, {}, 200),
        ("GET", f"/survey/{tid}/1", None, {}, 403),  # no token
        ("POST", f"/survey/{tid}", b"", form, 403),  # nothing at all
        ("POST", f"/survey/{tid}?t={tok}", b"", form, 400),  # no rating
        ("POST", f"/survey/{tid}?t={tok}", b"rating=6", form, 400),
        ("POST", f"/survey/{tid}?t={tok}", b"rating=\xff\xfe&comment=\xc3", form, 400),
        ("POST", f"/survey/{tid}?t={tok}", b"rating=%FF", form, 400),
        ("POST", f"/survey/{tid}?t={tok}", b"\x00\x01\x02", {"Content-Type": "x/y"}, 400),
        ("POST", f"/survey/{tid}?t={tok}", b"rating=1", {"Content-Length": "abc"}, 400),
        ("PUT", f"/survey/{tid}?t={tok}", b"rating=1", form, 405),
        ("DELETE", f"/survey/{tid}/1?t={tok}", None, {}, 405),
        ("GET", f"/survey/{tid}?t={tok}", None, {}, 405),
        ("POST", f"/survey/{tid}/1?t={tok}", b"rating=1", form, 405),
        ("GET", "/survey/", None, {}, 404),
        ("GET", "/healthz", None, {}, 404),  # not on the public listener
        ("GET", "/metrics", None, {}, 404),
    ]
    answers = [(method, path[:60], surveyed.status(method, path, body, headers), expected)
               for method, path, body, headers, expected in cases]
    assert [a for a in answers if a[2] != a[3]] == []
    assert survey_row(surveyed.settings, surveyed.ticket).score is None


def test_random_ids_tokens_and_forms_never_get_a_5xx(surveyed: Surveyed) -> None:
    text = st.text(max_size=40)

    @hypothesis_settings(max_examples=60, deadline=None)
    @given(ticket=st.one_of(text, st.integers(-2**70, 2**70).map(str)), choice=text,
           token=text, rating=text, comment=text)
    def check(ticket: str, choice: str, token: str, rating: str, comment: str) -> None:
        quote = urllib.parse.quote
        t = quote(ticket, safe="") or "0"
        query = urllib.parse.urlencode({"t": token})
        assert surveyed.status("GET", f"/survey/{t}/{quote(choice, safe='') or 'x'}?{query}") < 500
        form = urllib.parse.urlencode({"t": token, "rating": rating, "comment": comment})
        assert surveyed.status("POST", f"/survey/{t}?{query}", form.encode(), {
            "Content-Type": "application/x-www-form-urlencoded"}) < 500

    check()


# -- ratings and expiry ----------------------------------------------------------------

def test_a_rating_flipped_back_and_forth_tells_the_agent_once(surveyed: Surveyed) -> None:
    for rating in ("2", "5", "1", "4", "1"):
        assert surveyed.rate(rating) == 200
    assert survey_row(surveyed.settings, surveyed.ticket).score == 1
    bad = mails(surveyed.settings, "survey-bad")
    assert [m.rcpt_tos for m in bad] == [["alice@staff.test", "lisa@staff.test"]]


def test_a_link_past_its_validity_shows_that_it_expired(surveyed: Surveyed) -> None:
    valid_days = surveyed.settings.survey.link_valid_days
    assert valid_days == 30  # the documented default
    path = f"/survey/{surveyed.ticket}/1?t={surveyed.token}"
    clock.freeze(SENT + timedelta(days=valid_days) - timedelta(minutes=1))
    assert surveyed.status("GET", path) == 200
    clock.freeze(SENT + timedelta(days=valid_days, minutes=1))
    conn = http.client.HTTPConnection("127.0.0.1", surveyed.port, timeout=10)
    conn.request("GET", path)
    page = conn.getresponse()
    assert page.status == 410 and b"expired" in page.read()
    conn.close()
    assert surveyed.rate("1") == 410
    assert survey_row(surveyed.settings, surveyed.ticket).score is None
    assert mails(surveyed.settings, "survey-bad") == []


def test_a_link_for_a_ticket_never_surveyed_is_404(surveyed: Surveyed) -> None:
    other = surveyed.ticket + 1000
    token = survey.token(surveyed.settings, other)
    assert surveyed.status("GET", f"/survey/{other}/1?t={token}") == 404


def test_rating_pages_allow_no_script_and_leak_no_token_in_a_referer(
        surveyed: Surveyed) -> None:
    """The rating page carries a token in its address and shows a customer's comment box:
    it answers under the desk's strict CSP, unframeable, not cached, no Referer."""
    pages = [f"/survey/{surveyed.ticket}/1?t={surveyed.token}",
             f"/survey/{surveyed.ticket}/1?t=forged", "/survey/999999/1?t=x"]
    for path in pages:
        conn = http.client.HTTPConnection("127.0.0.1", surveyed.port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        csp = response.getheader("Content-Security-Policy") or ""
        assert "default-src 'none'" in csp and "script-src" not in csp, path
        assert "frame-ancestors 'none'" in csp, path
        assert response.getheader("Referrer-Policy") == "no-referrer", path
        assert response.getheader("Cache-Control") == "no-store", path
