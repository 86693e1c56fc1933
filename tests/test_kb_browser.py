"""The knowledge base's journey in a real browser (Debian's chromium, tests/browser.py):
an agent's #kb by mail drafts an article, a lead cleans its personal data and publishes
it in the desk, a new customer's acknowledgement (the outgoing maildir) links it, and
the customer opens the link and says it solved the problem: the ticket is resolved and
the deflection counted. Screenshots go to tests/artifacts/kb-*.png."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tests.browser import Watch, screenshot, sign_in_in_browser
from tests.helpers import invoke_cli, wait_ticket, wait_until
from tests.kb_helpers import (
    ANSWER,
    PROBLEM,
    ack_links,
    agent_replies,
    articles,
    customer_writes,
    kb_desk,
    notification,
)
from tests.web_helpers import Desk

if TYPE_CHECKING:
    from playwright.sync_api import Page


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_kb_article_from_a_ticket_solves_the_next_customers_problem(
        page: Page, make_desk: Callable[..., Desk]) -> None:
    desk = kb_desk(make_desk)
    customer_writes(desk, "Carol Customer <carol@customer.test>", *PROBLEM)
    agent_replies(desk, "alice@staff.test", notification(desk, "alice@staff.test", 1),
                  "#kb\n\n" + ANSWER)
    wait_until(lambda: articles(desk), timeout=15, what="alice's draft")

    # the lead finds the draft, removes the flagged personal data and publishes it
    sign_in_in_browser(page, desk, "lisa@staff.test")
    page.goto(f"{desk.url}/desk/ticket/1")
    assert page.get_by_role("link", name="KB article 1").is_visible()
    assert page.get_by_role("button", name="Draft KB article").is_visible()
    page.get_by_role("link", name="Knowledge base").click()
    page.get_by_role("link", name=PROBLEM[0]).click()
    assert page.get_by_role("heading", name=re.compile("^Personal data to remove")).is_visible()
    screenshot(page, "kb-draft-flagged")
    page.get_by_label("Question").fill("Our office printer prints only blank pages, the "
                                       "test page too; the toner is new.")
    page.get_by_label("Category").fill("printing")
    page.get_by_label("Visibility").select_option("public")
    page.get_by_role("button", name="Save").click()
    assert not page.get_by_role("heading", name="Personal data to remove").count()
    page.get_by_role("button", name="Publish").click()
    page.get_by_text("published, public").wait_for()
    screenshot(page, "kb-published")

    # a new customer with the same problem: the acknowledgement links the article
    customer_writes(desk, "Dave <dave@customer.test>", "Printer only prints blank pages",
                    "Our printer prints blank pages since today, the toner is new.")
    [(link, number)] = ack_links(desk, "dave@customer.test", 2)
    assert number == 1

    customer = page.context.browser.new_context().new_page()  # type: ignore[union-attr]
    watch = Watch(customer, desk.url)
    customer.goto(link)
    assert customer.get_by_role("heading", name=PROBLEM[0]).is_visible()
    assert "power saving mode" in customer.inner_text("main")
    screenshot(customer, "kb-article-from-ack")
    customer.get_by_role("button", name="Yes").click()
    customer.get_by_text("Thank you for telling us").wait_for()
    customer.get_by_role("button", name="This solved my problem").click()
    customer.get_by_role("heading", name="Thank you").wait_for()
    screenshot(customer, "kb-solved")
    assert watch.problems() == []

    done = wait_ticket(desk.settings, 2, lambda t: t["status"] == "resolved")
    assert any(e["kind"] == "kb-deflection" and e["actor"] == "dave@customer.test"
               for e in done["events"])
    [article] = articles(desk)
    assert (article.deflections, article.helpful) == (1, 1)
    assert "#1     solved 1" in invoke_cli(desk.settings, "stats").stdout

    # the public search finds it too, and the desk's list counts it
    customer.goto(f"{desk.url}/kb/")
    customer.get_by_label("Search articles").fill("blank pages")
    customer.get_by_role("button", name="Search").click()
    assert customer.get_by_role("link", name=PROBLEM[0]).is_visible()
    screenshot(customer, "kb-search")
    customer.context.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_hostile_mail_in_an_article_runs_no_script_on_any_kb_page(
        page: Page, make_desk: Callable[..., Desk]) -> None:
    from sqlmodel import Session

    from helpdesk.kb import articles as kb_articles
    from helpdesk.store.kb_models import KbArticle
    from tests.helpers import engine_for
    from tests.kb_helpers import sign_in
    from tests.test_web_browser import PAYLOAD, header_problems, hostile_mail
    from tests.web_helpers import token

    desk = kb_desk(make_desk)
    desk.deliver(hostile_mail())
    wait_ticket(desk.settings, 1)
    lisa = sign_in(desk, "lisa")
    actions = lisa.get("/desk/ticket/1/actions")
    version = actions.text.split('name="version" value="')[1].split('"')[0]
    drafted = lisa.post("/desk/ticket/1/command", data={
        "command": "kb", "version": version, "csrf_token": token(actions)})  # the button
    assert drafted.status_code == 303, drafted.text
    with Session(engine_for(desk.settings)) as session:  # made public as it stands
        article = session.get(KbArticle, 1)
        assert article is not None and "Printer broken" in article.question
        article.flags = []
        kb_articles.save(session, desk.settings, article, kb_articles.Fields(
            title=article.title, question=article.question, resolution=PAYLOAD,
            category=PAYLOAD[:90], tags=("<b>x</b>",), visibility="public"))
        article.flags = []
        kb_articles.publish(session, article, lead="lisa")
        session.commit()

    sign_in_in_browser(page, desk, "lisa@staff.test")
    watch = Watch(page, desk.url)
    failures = {}
    for path in ("/desk/kb/", "/desk/kb/1", "/desk/kb/postmortem/1", "/desk/ticket/1",
                 "/kb/", "/kb/1", "/kb/search?q=printer+broken", "/kb/search?q=" + PAYLOAD,
                 "/kb/category/" + PAYLOAD[:90], "/kb/1?t=" + PAYLOAD):
        response = page.goto(desk.url + path)
        assert response is not None
        page.wait_for_load_state("load")
        found = watch.problems() + header_problems(response)
        if response.status >= 500:
            found.append(f"status {response.status}")
        if found:
            failures[path[:40]] = found
    screenshot(page, "kb-hostile-article")
    assert failures == {}
    # the pages showed it (escaped), and its category page is found by its odd name
    assert page.goto(desk.url + "/kb/1").status == 200  # type: ignore[union-attr]
    assert "Printer broken <script>" in page.inner_text("h1")
    page.get_by_role("link", name=PAYLOAD[:20]).first.click()
    assert "Printer broken" in page.inner_text("main")
