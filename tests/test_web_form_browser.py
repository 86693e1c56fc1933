"""The public "new request" form in a real browser (Debian's chromium through
Playwright, tests/browser.py): a visitor fills it in with an attachment, gets the
confirmation link by mail (the outgoing maildir), follows it and presses the button,
and the ticket is in the desk's unassigned queue with channel web and the attachment;
the same form sent again makes no second ticket; a visitor offered a matching article
says it solved the problem and no ticket is made. The form fits a phone. Screenshots:
tests/artifacts/web-form-*.png."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser import Watch, screenshot, sign_in_in_browser
from tests.helpers import wait_drained, wait_ticket
from tests.test_web_form import (
    CONFIRM_LINK,
    DORA,
    deflections,
    form_desk,
    link_in,
    publish_article,
    row,
    tickets,
)
from tests.web_helpers import Desk

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def fill(page: Page, subject: str, text: str) -> None:
    page.get_by_label("Your name").fill("Dora Visitor")
    page.get_by_label("Your e-mail address").fill(DORA)
    page.get_by_label("Subject").fill(subject)
    page.get_by_label("What happened?").fill(text)


def test_a_visitor_reports_confirms_and_the_desk_sees_it(
        page: Page, make_desk: Callable[..., Desk], tmp_path: Path) -> None:
    desk = form_desk(make_desk, tmp_path)
    watch = Watch(page, desk.url)
    page.goto(f"{desk.url}/portal/")
    page.get_by_role("link", name="Report an issue").click()
    page.get_by_role("heading", name="Report an issue").wait_for()
    fill(page, "Scanner jams", "The scanner jams on every second page.")
    page.get_by_label("Category").select_option("Printing")
    page.get_by_label("High: it stops my work").check()
    shot = tmp_path / "jam.png"
    shot.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    page.get_by_label("Attachments (optional)").set_input_files(str(shot))
    screenshot(page, "web-form-filled")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("heading", name="Request received").wait_for()
    screenshot(page, "web-form-received")

    page.go_back()  # the same form sent again: still one ticket
    page.get_by_role("heading", name="Report an issue").wait_for()
    if not page.get_by_label("Subject").input_value():
        fill(page, "Scanner jams", "The scanner jams on every second page.")
        page.get_by_label("Category").select_option("Printing")
        page.get_by_label("High: it stops my work").check()
    page.get_by_label("Attachments (optional)").set_input_files(str(shot))
    page.get_by_role("button", name="Next").click()
    page.get_by_role("heading", name="Request received").wait_for()

    wait_ticket(desk.settings, 1)
    link = link_in(desk, DORA, CONFIRM_LINK, "Please confirm")
    page.goto(desk.url + link)
    screenshot(page, "web-form-confirm")
    page.get_by_role("button", name="Confirm my request").click()
    page.get_by_role("heading", name="Request confirmed").wait_for()
    page.get_by_role("link", name="See where your request stands").click()
    page.get_by_role("heading", name="Scanner jams").wait_for()
    assert watch.problems() == []
    wait_drained(desk.settings)
    assert len(tickets(desk)) == 1 and not row(desk).unconfirmed

    sign_in_in_browser(page, desk, "alice@staff.test")
    page.goto(f"{desk.url}/desk/queue/unassigned")
    listed = page.get_by_role("row").filter(has_text="Scanner jams")
    listed.wait_for()
    assert listed.get_by_text("web", exact=True).is_visible()
    screenshot(page, "web-form-queue")
    listed.get_by_role("link", name="Scanner jams").click()
    page.get_by_text("jam.png").first.wait_for()
    assert page.locator("dt:has-text('Channel') + dd").inner_text().startswith("web")
    screenshot(page, "web-form-ticket")


def test_an_offered_article_solves_it_and_no_ticket_is_made(
        page: Page, make_desk: Callable[..., Desk], tmp_path: Path) -> None:
    desk = form_desk(make_desk, tmp_path, kb={"enabled": True})
    number = publish_article(desk)
    watch = Watch(page, desk.url)
    page.goto(f"{desk.url}/kb/")
    page.get_by_role("link", name="Report an issue").click()
    fill(page, "Scanner jams", "The scanner jams on every second page.")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("heading", name="Does one of these solve it?").wait_for()
    screenshot(page, "web-form-suggested")
    page.get_by_role("button", name="Yes, this solved it").click()
    page.get_by_role("heading", name="Glad it helped").wait_for()
    assert watch.problems() == []
    wait_drained(desk.settings)
    assert tickets(desk) == [] and deflections(desk, number) == 1

    page.set_viewport_size({"width": 375, "height": 800})  # a phone
    page.goto(f"{desk.url}/portal/new")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the form is {width}px wide on a 375px screen"
    screenshot(page, "web-form-phone")
