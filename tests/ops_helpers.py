"""Shared by the ticket-operations tests: desk clients signed in as agents."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import httpx

from helpdesk.config.settings import Settings
from tests.helpers import DaemonThread, invoke_cli
from tests.test_web_actions import Browsers, hidden


def signed_in_browsers(desk: tuple[Settings, DaemonThread]) -> Iterator[Browsers]:
    """For a `browsers` fixture: browsers(name) is a client signed in as that agent by a
    one-time link (tests/test_web_actions.py's fixture, and the ticket-operations')."""
    settings, daemon = desk
    url = f"http://127.0.0.1:{daemon.daemon.public.port}"  # type: ignore[union-attr]
    made: list[httpx.Client] = []

    def sign_in(name: str) -> httpx.Client:
        browser = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
        made.append(browser)
        result = invoke_cli(settings, "web", "login-link", name)
        assert result.exit_code == 0, result.output
        link = result.stdout.splitlines()[0].replace("http://127.0.0.1:0", url)
        page = browser.get(link)
        answer = browser.post("/desk/login/confirm", data={
            "t": parse_qs(urlparse(link).query)["t"][0], "csrf_token": hidden(page, "csrf_token")})
        assert answer.status_code == 303, answer.text
        return browser

    yield sign_in
    for browser in made:
        browser.close()
