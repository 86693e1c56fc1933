"""Split and merge in a real browser (Debian's chromium through Playwright, see
tests/browser.py): alice splits a customer's second problem off into a new ticket with
the button on that message, follows the link to it, and merges it back with the
command form; the merged ticket's page says where it went. Screenshots go to
tests/artifacts/ for review."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tests.agent_desk import msgid
from tests.browser import Watch, screenshot, sign_in_in_browser
from tests.helpers import make_mail, ticket, wait_ticket
from tests.web_helpers import Desk

if TYPE_CHECKING:
    from playwright.sync_api import Page


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_agent_splits_a_message_off_and_merges_it_back_in_the_browser(
        page: Page, make_desk: Callable[..., Desk]) -> None:
    desk = make_desk()
    first = make_mail(subject="Printer on fire", body="The printer is on fire.")
    desk.deliver(first)
    wait_ticket(desk.settings, 1)
    desk.deliver(make_mail(subject="Re: Printer on fire", body="Also the scanner smokes.",
                           in_reply_to=f"<{msgid(first)}>"))
    wait_ticket(desk.settings, 1, lambda t: len(t["messages"]) == 2, what="the follow-up")

    sign_in_in_browser(page, desk, "alice@staff.test")
    watch = Watch(page, desk.url)
    page.goto(f"{desk.url}/desk/ticket/1")
    scanner = page.locator("article.message").filter(has_text="Also the scanner smokes.")
    # one button, on the follow-up only: the first mail is what the ticket is about
    assert page.get_by_role("button", name=re.compile("^Split message")).count() == 1
    scanner.get_by_role("button", name=re.compile("^Split message")).click()
    page.wait_for_url(f"{desk.url}/desk/ticket/1")
    links = page.locator("section.links")
    assert "Related" in links.inner_text()
    screenshot(page, "ops-split-old-ticket")
    links.get_by_role("link", name="HD-2").click()
    page.wait_for_url(f"{desk.url}/desk/ticket/2")
    assert page.locator("article.message").filter(
        has_text="Also the scanner smokes.").is_visible()
    assert [m["body_text"].strip() for m in ticket(desk.settings, 2)["messages"]] == [
        "Also the scanner smokes."]

    page.locator("#arg-merge").fill("HD-1")
    page.get_by_role("button", name="Merge", exact=True).click()
    page.wait_for_url(f"{desk.url}/desk/ticket/2")
    assert page.get_by_role("heading", name="Merged into HD-1").is_visible()
    screenshot(page, "ops-merged-ticket")
    page.locator("section.merged").get_by_role("link", name="HD-1").click()
    page.wait_for_url(f"{desk.url}/desk/ticket/1")
    assert page.locator("article.message").filter(
        has_text="Also the scanner smokes.").is_visible()
    assert "Merged into this one" in page.locator("section.links").inner_text()
    assert watch.problems() == []
