"""A real browser for the desk's tests: Debian's chromium, driven by Playwright for
Python with `executable_path` set, so nothing is downloaded (no `playwright install`).

- `chromium_path()`: $HELPDESK_TEST_CHROMIUM, else `chromium` (or `chromium-browser`) on
  PATH; `./scripts/test` installs Debian's package. Missing: the test is skipped with
  the reason, and fails under CI=true (conftest.need_server).
- `page` (fixture): a Page in a fresh browser context (no cookies), headless, 15 s
  timeouts. One browser per test: the sync API marks the test thread's event loop as
  running while Playwright is up (so `asyncio.run` in the test body fails: run such
  code in a thread), and a browser held across tests would break the async tests that
  pytest-xdist puts on the same worker. Starting chromium takes about a second.
- `screenshot(page, name)`: tests/artifacts/NAME.png (gitignored), for review.
- `sign_in_in_browser(page, desk, address)`: the agent's way in, by the mailed link.
- `Watch(page, origin)`: what hostile mail content could make a page do, recorded:
  dialogs, console errors and CSP reports, page errors, requests leaving the desk;
  `watch.problems()` adds what it finds in the DOM (a marker set by injected script,
  javascript: URLs, inline event handlers). tests/test_web_browser.py uses it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import pytest

from tests.web_helpers import Desk

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Dialog, Page, Request

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
TIMEOUT_MS = 15_000

# What injected script does when it runs, built so that the words do not appear in
# the payload's own text: a page may show the payload escaped, which is right, and
# must not be mistaken for the script having run.
MARKER = "PWNED"
RUN = "document.title='PW'+'NED';window['__pw'+'ned']=1;alert('PW'+'NED')"

# Chromium's wording for a blocked image, older and newer
_IMAGE_BLOCKED = re.compile(r"Refused to load the image|Loading the image")

# Run in every frame: the traces a script injected by mail would leave in the DOM.
_DOM_CHECK = """() => {
  const found = [];
  if (document.title.includes('PWNED')) found.push('document.title set by injected script');
  if (window.__pwned) found.push('window.__pwned set by injected script');
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      const value = attr.value.replace(/[\\s\\u0000-\\u001f]/g, '').toLowerCase();
      if (name.startsWith('on'))
        found.push(`inline handler ${name} on <${el.localName}>`);
      if (['href', 'src', 'action', 'formaction', 'xlink:href', 'data'].includes(name)
          && /^(javascript|vbscript|data:text\\/html)/.test(value))
        found.push(`${name}=${attr.value.slice(0, 40)} on <${el.localName}>`);
    }
  }
  return found;
}"""


def chromium_path() -> str | None:
    chosen = os.environ.get("HELPDESK_TEST_CHROMIUM")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _why_no_browser() -> str:
    """'' when the browser tests can run, else why not."""
    if chromium_path() is None:
        return ("browser tests need Debian's chromium (apt-get install chromium, or set "
                "HELPDESK_TEST_CHROMIUM to a Chromium binary)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "browser tests need Playwright for Python (pip install -e '.[test]')"
    return ""


@pytest.fixture
def page() -> Iterator[Page]:
    """A headless chromium page of a fresh context, closed with its browser afterwards."""
    from tests.conftest import need_server  # not at the top: conftest imports this module

    need_server(_why_no_browser() or None)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True,
            # the sandbox needs user namespaces, which root in a container lacks; the
            # browser only ever opens our own pages on loopback
            chromium_sandbox=False,
            # /dev/shm is small in containers; no GPU; fewer renderer processes, so
            # three xdist workers with a browser each stay light
            args=["--disable-dev-shm-usage", "--disable-gpu", "--renderer-process-limit=2"])
        try:
            context = browser.new_context()
            context.set_default_timeout(TIMEOUT_MS)
            yield context.new_page()
            context.close()
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> Path:
    """Save what the page shows (the whole page) as tests/artifacts/NAME.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in_in_browser(page: Page, desk: Desk, address: str) -> None:
    """Sign in as an agent does: ask for a link on /desk/login, open the link from the
    outgoing maildir, press the button; ends on /desk/."""
    before = len(desk.mails_to(address))
    page.goto(f"{desk.url}/desk/login")
    page.get_by_label("Your email address").fill(address)
    page.get_by_role("button", name="Mail me a sign-in link").click()
    page.get_by_role("heading", name="Check your mail").wait_for()
    page.goto(desk.link_mailed_to(address, count=before + 1))
    page.get_by_role("button", name=re.compile("^Sign in to ")).click()
    page.wait_for_url(f"{desk.url}/desk/")


class Watch:
    """Listens to a page for signs that script or style from mail ran."""

    def __init__(self, page: Page, origin: str) -> None:
        self.page = page
        self.origin = urlparse(origin).netloc
        self.seen: list[str] = []
        self.left: dict[Request, str] = {}  # requests to elsewhere, until CSP blocks them
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.seen.append(f"page error: {error}"))
        page.on("request", self._request)
        page.on("requestfailed", self._failed)

    def _dialog(self, dialog: Dialog) -> None:
        self.seen.append(f"{dialog.type} dialog: {dialog.message!r}")
        dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        text = message.text
        # a blocked remote image is CSP doing its job (mail's tracking pixels); any
        # other report means markup from mail reached the page unescaped, and only
        # the policy stopped it
        if "Content Security Policy" in text and not _IMAGE_BLOCKED.search(text):
            self.seen.append(f"CSP report (mail markup reached the page): {text[:300]}")
        elif MARKER in text:
            self.seen.append(f"console: {text[:300]}")

    def _request(self, request: Request) -> None:
        where = urlparse(request.url)
        if where.scheme in ("http", "https", "ws", "wss") and where.netloc != self.origin:
            self.left[request] = f"request left the desk: {request.method} {request.url[:200]}"

    def _failed(self, request: Request) -> None:
        # Playwright reports a request the policy blocked, then its failure: it never
        # went out (a blocked remote image); the policy reports any other kind itself
        if request.failure == "csp":
            self.left.pop(request, None)

    def problems(self) -> list[str]:
        """Everything seen since the last call, and the DOM's traces in every frame."""
        found = []
        for frame in self.page.frames:
            # a frame with no document (an iframe whose javascript: source was
            # blocked) never answers an evaluation; the iframe itself is in its parent
            if not frame.url:
                continue
            try:
                found += [f"{frame.url[:60]}: {p}" for p in frame.evaluate(_DOM_CHECK)]
            except Exception as err:  # a frame gone, or one we may not look into
                found.append(f"could not inspect frame {frame.url[:60]}: {err}")
        found = self.seen + list(self.left.values()) + found
        self.seen, self.left = [], {}
        return found
