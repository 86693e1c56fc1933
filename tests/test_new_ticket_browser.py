"""Issue #20 in a real browser (Chromium): an agent opens an internal ticket in the desk
and another by mail, and no customer mail goes out for either (the outgoing maildir);
a ticket opened on behalf of a customer is acknowledged to them with the status link."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest

from tests.browser import Watch, screenshot, sign_in_in_browser
from tests.helpers import wait_ticket, wait_until
from tests.web_helpers import Desk

if TYPE_CHECKING:
    from playwright.sync_api import Page

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
AGENTS = {"alice@staff.test", "lisa@staff.test", "omar@staff.test"}
DAN = "dan@customer.test"
BADGE = "span.badge.internal"


def _agent_mail(subject: str, text: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Alice Agent <alice@staff.test>"
    msg["To"] = "support@example.test"
    msg["Subject"] = subject
    msg["Message-ID"] = "<found-in-testing-1@staff.test>"
    # our MTA's verdict on alice's DKIM signature: what proves a new mail hers
    msg["Authentication-Results"] = "mx.example.test; dkim=pass header.d=staff.test"
    msg.set_content(text)
    return msg


def _open_in_desk(page: Page, desk: Desk, subject: str, text: str) -> None:
    page.get_by_role("navigation", name="Desk").get_by_role("link", name="New ticket").click()
    page.wait_for_url(f"{desk.url}/desk/new")
    page.get_by_label("Subject").fill(subject)
    page.get_by_label("First message").fill(text)


@sqlite_only
def test_agents_log_internal_tickets_and_one_for_a_customer(
        page: Page, make_desk: Callable[..., Desk]) -> None:
    desk = make_desk(portal={"enabled": True},
                     agents_auth={"trusted_authserv_ids": ["mx.example.test"]})
    sign_in_in_browser(page, desk, "alice@staff.test")
    watch = Watch(page, desk.url)

    # internal, in the desk, with an attachment and a priority the agent chose
    _open_in_desk(page, desk, "Checkout button dead on staging",
                  "Found in testing: the checkout button does nothing.")
    page.get_by_label("Priority").select_option("high")
    page.get_by_label("Attachments").set_input_files(
        {"name": "console.txt", "mimeType": "text/plain", "buffer": b"TypeError: x\n"})
    screenshot(page, "new-ticket-form")
    page.get_by_role("button", name="Open the ticket").click()
    page.wait_for_url(f"{desk.url}/desk/ticket/1")
    assert page.locator(BADGE).first.is_visible()
    assert page.get_by_role("link", name="console.txt").is_visible()
    screenshot(page, "new-ticket-internal")

    # internal, by mail from alice's own address
    desk.deliver(_agent_mail("Search slow on staging", "Search takes 9 s since today.\n"),
                 sender="alice@staff.test")
    found = wait_ticket(desk.settings, 2)
    assert any(e["kind"] == "created" and e["actor"] == "alice" for e in found["events"])
    page.goto(f"{desk.url}/desk/queue/all")
    for subject in ("Checkout button dead on staging", "Search slow on staging"):
        row = page.get_by_role("row").filter(has_text=subject)
        assert row.locator(BADGE).is_visible()
    screenshot(page, "new-ticket-queue-internal")

    # on behalf of a customer: acknowledged to dan with the status link
    _open_in_desk(page, desk, "Phone call: invoice missing", "Dan called about March.")
    page.get_by_label("On behalf of a customer").check()
    page.get_by_label("Customer's address").fill(DAN)
    page.get_by_role("button", name="Open the ticket").click()
    page.get_by_role("heading", name="Request received").wait_for()
    ack = wait_until(lambda: desk.mails_to(DAN, subject=""), timeout=15,
                     what="the acknowledgement to dan")
    assert "/portal/ticket/" in ack[0].get_body(("plain",)).get_content()
    page.get_by_role("link", name="Open it").click()
    page.wait_for_url(f"{desk.url}/desk/ticket/3")
    assert page.locator(BADGE).count() == 0
    screenshot(page, "new-ticket-for-customer")

    # nothing went to anybody but the agents and dan, and dan only his acknowledgement
    everything = desk.mails_to("", subject="")
    outsiders = {str(m["To"]) for m in everything
                 if not any(a in str(m["To"]) for a in AGENTS)}
    assert outsiders == {DAN}
    assert len(desk.mails_to(DAN, subject="")) == 1
    assert watch.problems() == []
