"""Shared helpers for tests of the web desk: the real daemon with [web] enabled on
loopback, httpx clients standing in for browsers, and the ways an agent signs in.

The whole API (the fixtures are registered in tests/conftest.py):

- `make_desk(web=None, agents=None, **config) -> Desk` (fixture, a factory): a daemon
  with `[web] enabled = true` (plus `web` keys and other config sections), outgoing mail
  into the maildir, agents.toml = config/agents.toml (alice agent, lisa and omar leads)
  unless `agents` gives its text.
- `Desk`: `.url` (http://127.0.0.1:PORT, the public listener), `.settings`, `.daemon`,
  `.client()` (an httpx client with a cookie jar of its own, closed at teardown;
  `.browser()` is the same, the name test_web_auth.py uses),
  `.deliver(mail)` (SMTP to the daemon), `.mails_to(address)` (the outgoing maildir),
  `.link_mailed_to(address)` (the sign-in link in the newest sign-in mail).
- `token(response)`: the CSRF token of a desk page; `submit(client, page, action, data)`
  posts a form the way a browser does (token from `page`).
- Signing in: `sign_in(desk, name)` (`helpdesk web login-link NAME`, the quickest),
  `sign_in_by_mail(desk, address)` (ask on /desk/login, follow the mailed link),
  with the steps `ask_for_link` and `follow_link`; `signed_in_as(client)` says who.

A real browser signing in is in tests/browser.py (`sign_in_in_browser`).
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from helpdesk.config.settings import Settings
from tests.helpers import REPO, DaemonThread, invoke_cli, send, wait_until

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
LINK = re.compile(r"^(https?://\S+/desk/login/confirm\?t=\S+)$", re.M)


@dataclass
class Desk:
    settings: Settings
    daemon: DaemonThread
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.daemon.daemon.public.port}"  # type: ignore[union-attr]

    def client(self) -> httpx.Client:
        """A browser's worth of state (cookies) against the desk; no redirects followed,
        so tests see each 303."""
        client = httpx.Client(base_url=self.url, follow_redirects=False, timeout=15)
        self.clients.append(client)
        return client

    # the name test_web_auth.py has always used; the same thing
    browser = client

    def deliver(self, mail: EmailMessage | bytes, *, sender: str = "carol@customer.test",
                rcpts: list[str] | None = None) -> None:
        """A customer's mail, over SMTP to the daemon (support@example.test unless
        `rcpts`)."""
        send(self.daemon.port, mail, sender=sender, rcpts=rcpts)

    def mails_to(self, address: str, subject: str = "sign-in link") -> list[EmailMessage]:
        """Mails in the outgoing maildir to `address` whose subject contains `subject`
        ("" for all), oldest first."""
        new = self.settings.data_dir / "maildir" / "new"
        found = []
        for path in sorted(new.iterdir()) if new.is_dir() else []:
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if address in str(msg["To"]) and subject in str(msg["Subject"]):
                found.append(msg)
        return found  # type: ignore[return-value]

    def link_mailed_to(self, address: str, count: int = 1) -> str:
        """The link in the newest sign-in mail to `address`, once `count` have come."""
        mails = wait_until(lambda: len(self.mails_to(address)) >= count and
                           self.mails_to(address), timeout=15, what=f"a link for {address}")
        text = mails[-1].get_body(("plain",)).get_content()
        return str(LINK.search(text)[1])  # type: ignore[index]


def token(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, page.text
    return found[1]


def submit(client: httpx.Client, page: str, action: str, data: dict[str, Any],
           files: Any = None) -> httpx.Response:
    """GET `page`, then POST `data` to `action` with the page's CSRF token."""
    form = token(client.get(page))
    return client.post(action, data={**data, "csrf_token": form}, files=files)


def ask_for_link(client: httpx.Client, address: str) -> httpx.Response:
    return submit(client, "/desk/login", "/desk/login/link", {"address": address})


def follow_link(client: httpx.Client, link: str) -> httpx.Response:
    """What an agent does with the mailed link: open it, press the button."""
    page = client.get(link)
    assert page.status_code == 200, page.text
    t = parse_qs(urlparse(link).query)["t"][0]
    return client.post("/desk/login/confirm", data={"t": t, "csrf_token": token(page)})


def cli_link(desk: Desk, name: str) -> str:
    """`helpdesk web login-link NAME`, pointed at the port the desk really got (the
    config says port 0, which the command cannot know)."""
    result = invoke_cli(desk.settings, "web", "login-link", name)
    assert result.exit_code == 0, result.output
    link = result.stdout.splitlines()[0]
    assert link.startswith("http://127.0.0.1:0/desk/login/confirm?t="), link
    return str(link.replace("http://127.0.0.1:0", desk.url))


def sign_in(desk: Desk, name: str) -> httpx.Client:
    """A client signed in as agent `name`, through the command line's link."""
    client = desk.client()
    answer = follow_link(client, cli_link(desk, name))
    assert answer.status_code == 303 and answer.headers["location"] == "/desk/"
    return client


def sign_in_by_mail(desk: Desk, address: str) -> httpx.Client:
    """A client signed in the way an agent does: asks for a link, follows the mail."""
    client = desk.client()
    before = len(desk.mails_to(address))
    assert ask_for_link(client, address).status_code == 200
    answer = follow_link(client, desk.link_mailed_to(address, count=before + 1))
    assert answer.status_code == 303, answer.text
    return client


def signed_in_as(client: httpx.Client) -> str | None:
    """The name of the agent the client is signed in as (from /desk/), or None."""
    page = client.get("/desk/")
    if page.status_code == 303:
        assert page.headers["location"].startswith("/desk/login")
        return None
    assert page.status_code == 200, page.text
    return str(re.search(r"\((\w+), (\w+)\)", page.text)[1])  # type: ignore[index]


@pytest.fixture
def make_desk(make_settings: Any,
              start_daemon: Callable[..., DaemonThread]) -> Iterator[Callable[..., Desk]]:
    made: list[Desk] = []

    def make(web: dict[str, Any] | None = None, agents: str | None = None,
             **config: Any) -> Desk:
        settings = make_settings({"web": {"enabled": True, **(web or {})}, **config})
        assert settings.source is not None
        beside = settings.source.parent / "agents.toml"
        beside.write_text(agents if agents is not None else
                          (REPO / "config" / "agents.toml").read_text())
        made.append(Desk(settings, start_daemon(settings)))
        return made[-1]

    yield make
    for desk in made:
        for client in desk.clients:
            client.close()
