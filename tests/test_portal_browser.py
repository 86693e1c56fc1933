"""The customer's side in a real browser (Debian's chromium through Playwright,
tests/browser.py): follow the link in the acknowledgement from the outgoing maildir,
see the status, reply from the page and find the reply on the ticket (through the
spool and the pipeline), mark it solved, then try a tampered and an expired link. A
hostile mail's page runs no script and loads nothing from elsewhere; the page fits a
phone's width. Screenshots: tests/artifacts/portal-*.png."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from helpdesk import clock
from helpdesk.outgoing import portal_links
from tests.browser import Watch, screenshot
from tests.helpers import free_port, make_mail, wait_ticket, wait_until
from tests.test_portal import STATUS_LINK, link_in, portal_messages
from tests.test_web_browser import PAYLOAD, header_problems, shipped_config
from tests.web_helpers import Desk

if TYPE_CHECKING:
    from playwright.sync_api import Page

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _desk(make_desk: Callable[..., Desk]) -> Desk:
    return make_desk(http={"listen": "127.0.0.1:0", "public": f"127.0.0.1:{free_port()}"},
                     portal={"enabled": True},
                     sla={"normal": {"first_response": "4h"}},
                     business_hours={"timezone": "UTC", "week": {
                         day: "09:00-17:00" for day in ("mon", "tue", "wed", "thu", "fri")}})


@sqlite_only
def test_the_customer_follows_the_link_replies_and_marks_it_solved(
        page: Page, make_desk: Callable[..., Desk]) -> None:
    desk = _desk(make_desk)
    desk.deliver(make_mail(subject="Printer on fire", body="Help, the printer is on fire."))
    wait_ticket(desk.settings, 1)
    link = link_in(desk, STATUS_LINK, 1)  # the acknowledgement in the outgoing maildir
    watch = Watch(page, desk.url)

    response = page.goto(link)
    assert response is not None and response.status == 200
    assert header_problems(response) == []
    page.get_by_role("heading", name="Printer on fire").wait_for()
    assert page.get_by_text("Received — we will get back to you soon").is_visible()
    assert page.get_by_text("within 4 business hours").is_visible()
    screenshot(page, "portal-ticket")

    page.get_by_label("Your message").fill("It is still smoking, and now it beeps.")
    page.get_by_role("button", name="Send").click()
    page.get_by_text("We received your message").wait_for()
    stored = wait_until(lambda: portal_messages(desk), timeout=15, what="the reply stored")
    assert stored[0].ticket_id == 1 and "now it beeps" in stored[0].body_text
    wait_until(lambda: page.reload() and page.get_by_text("now it beeps").count(),
               timeout=15, what="the reply on the page")
    screenshot(page, "portal-replied")

    page.get_by_role("button", name="Solved for me").click()
    page.get_by_text("We have marked your request as solved").wait_for()
    assert page.get_by_text("Resolved — tell us if it isn't").is_visible()
    assert page.get_by_role("button", name="Still broken").is_visible()
    assert wait_ticket(desk.settings, 1)["status"] == "resolved"
    screenshot(page, "portal-solved")

    page.set_viewport_size({"width": 375, "height": 800})  # a phone
    page.reload()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width}px wide on a 375px screen"
    screenshot(page, "portal-phone")
    assert watch.problems() == []


@sqlite_only
def test_a_tampered_and_an_expired_link(page: Page, make_desk: Callable[..., Desk]) -> None:
    desk = _desk(make_desk)
    desk.deliver(make_mail())
    wait_ticket(desk.settings, 1)
    link = link_in(desk, STATUS_LINK, 1)
    watch = Watch(page, desk.url)

    token = link.rsplit("/", 1)[1]
    tampered = link[: -len(token)] + token.replace(token[-6:], "AAAAAA")
    response = page.goto(tampered)
    assert response is not None and response.status == 404
    page.get_by_role("heading", name="This link is not valid").wait_for()
    assert page.get_by_label("Your email address").is_visible()
    screenshot(page, "portal-tampered")

    old = portal_links.ticket_token(desk.settings, 1, clock.now() - timedelta(days=40))
    response = page.goto(f"{desk.url}/portal/ticket/{old}")
    assert response is not None and response.status == 410
    page.get_by_role("heading", name="This link has expired").wait_for()
    screenshot(page, "portal-expired")
    page.get_by_role("button", name="Mail me a fresh link").click()
    page.get_by_role("heading", name="Check your mail").wait_for()
    fresh = link_in(desk, STATUS_LINK, 1, subject="fresh link")
    page.goto(fresh)
    page.get_by_role("heading", name="Printer on fire").wait_for()
    assert watch.problems() == []


@sqlite_only
def test_a_hostile_mail_runs_nothing_on_its_page(page: Page,
                                                 make_desk: Callable[..., Desk]) -> None:
    desk = _desk(make_desk)
    desk.deliver(make_mail(subject=f"Broken {PAYLOAD}", body=f"It broke.\n{PAYLOAD}\n",
                           sender=f'"{PAYLOAD[:60]}" <carol@customer.test>'))
    wait_ticket(desk.settings, 1)
    link = link_in(desk, STATUS_LINK, 1)
    watch = Watch(page, desk.url)
    response = page.goto(link)
    assert response is not None and response.status == 200
    page.wait_for_load_state("load")
    assert page.get_by_text("It broke.").count()
    assert watch.problems() == []
    screenshot(page, "portal-hostile")


def test_the_shipped_config_serves_the_status_pages(
        page: Page, tmp_path: Path, daemon_procs: Callable[..., Any]) -> None:
    settings, ports = shipped_config(tmp_path)
    assert settings.portal.enabled
    daemon = daemon_procs(settings).start()
    page.goto(f"http://127.0.0.1:{ports['public']}/portal/")
    page.get_by_role("heading", name="Your requests").wait_for()
    page.get_by_label("Your email address").fill("nobody@customer.test")
    page.get_by_role("button", name="Mail me a link to my requests").click()
    page.get_by_role("heading", name="Check your mail").wait_for()
    assert daemon.terminate() == 0, daemon.log()
