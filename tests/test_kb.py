"""The knowledge base end to end over real servers (SMTP in, the outgoing maildir, the
public listener; SQLite and PostgreSQL): an agent's #kb drafts an article with the
personal data flagged, a lead publishes it in the desk, a new customer's
acknowledgement suggests it with a signed link, and "this solved my problem" resolves
that ticket and counts a deflection. Also: who may publish, what the public pages
show and refuse, "did this help?", post-mortems, export/import, the migration.
The same journey in a real browser is tests/test_kb_browser.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from helpdesk.store import db
from tests.helpers import invoke_cli, ticket, wait_ticket, wait_until
from tests.kb_helpers import (
    ANSWER,
    PROBLEM,
    ack_links,
    agent_replies,
    articles,
    customer_writes,
    kb_desk,
    notification,
    sign_in,
)
from tests.web_helpers import Desk, token

CAROL = "Carol Customer <carol@customer.test>"
DAVE = "Dave Other <dave@customer.test>"
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _drafted(desk: Desk) -> None:
    """Carol's ticket HD-1, answered by alice with #kb."""
    customer_writes(desk, CAROL, *PROBLEM)
    note = notification(desk, "alice@staff.test", 1)
    agent_replies(desk, "alice@staff.test", note, "#kb\n\n" + ANSWER)
    wait_until(lambda: articles(desk), timeout=15, what="the draft")


def _cleaned(lead: httpx.Client, number: int, **changes: str) -> httpx.Response:
    page = lead.get(f"/desk/kb/{number}")
    form = {"title": "Printer prints blank pages", "category": "printing",
            "tags": "printer toner", "visibility": "public",
            "question": "Our office printer prints only blank pages, the test page too; "
                        "the toner is new.",
            "resolution": ANSWER, **changes}
    version = page.text.split('name="version" value="')[1].split('"')[0]
    return lead.post(f"/desk/kb/{number}",
                     data={**form, "version": version, "csrf_token": token(page)})


def _publish(client: httpx.Client, number: int) -> httpx.Response:
    page = client.get(f"/desk/kb/{number}")
    version = page.text.split('name="version" value="')[1].split('"')[0]
    return client.post(f"/desk/kb/{number}/publish",
                       data={"version": version, "csrf_token": token(page)})


def test_kb_drafts_flags_publishes_suggests_and_deflects(
        make_desk: Callable[..., Desk]) -> None:
    desk = kb_desk(make_desk)
    _drafted(desk)
    [draft] = articles(desk)
    assert (draft.status, draft.visibility, draft.ticket_id) == ("draft", "internal", 1)
    assert draft.title == PROBLEM[0]
    assert draft.question.startswith(PROBLEM[0]) and "toner is new" in draft.question
    assert "ACME Ltd" not in draft.question  # the signature is cut
    assert "power saving mode" in draft.resolution and "#kb" not in draft.resolution
    flagged = {(f["kind"], f["text"]) for f in draft.flags}
    assert ("phone number", "+49 30 1234567") in flagged
    assert ("name", "Carol") in flagged
    assert any(e["kind"] == "kb-draft" and e["actor"] == "alice"
               for e in ticket(desk.settings, 1)["events"])
    # the reply went on to the customer as usual
    assert desk.mails_to("carol@customer.test", "[HD-1]")

    lead, agent = sign_in(desk, "lisa"), sign_in(desk, "alice")
    refused = _publish(lead, 1)
    assert refused.status_code == 422 and "personal data" in refused.text
    assert _publish(agent, 1).status_code == 403  # not a lead
    assert _cleaned(lead, 1).status_code == 303
    assert articles(desk)[0].flags == []
    assert _publish(lead, 1).status_code == 303
    [published] = articles(desk)
    assert (published.status, published.visibility, published.published_by) == \
        ("published", "public", "lisa")

    # a new customer with the same problem gets it in the acknowledgement
    customer_writes(desk, DAVE, "Blank pages from the printer",
                    "Our printer prints only blank pages since today. The toner is new.")
    [(link, number)] = ack_links(desk, "dave@customer.test", 2)
    assert number == 1
    customer_writes(desk, "Erin <erin@customer.test>", "Invoice address",
                    "Please change the address on my invoices.")
    assert ack_links(desk, "erin@customer.test", 3) == []

    browser = desk.client()
    page = browser.get(link.replace(desk.settings.public_base_url(), desk.url))
    assert page.status_code == 200 and "This solved my problem" in page.text
    assert ticket(desk.settings, 2)["status"] == "new"  # a GET changes nothing
    t = link.split("?t=")[1]
    solved = browser.post("/kb/1/solved", data={"t": t, "csrf_token": token(page)})
    assert solved.status_code == 200, solved.text
    done = wait_ticket(desk.settings, 2, lambda t: t["status"] == "resolved")
    [event] = [e for e in done["events"] if e["kind"] == "kb-deflection"]
    assert event["actor"] == "dave@customer.test" and "KB article 1" in event["detail"]
    again = browser.post("/kb/1/solved", data={"t": t, "csrf_token": token(page)})
    assert again.status_code == 200
    assert articles(desk)[0].deflections == 1  # once per ticket

    stats = invoke_cli(desk.settings, "kb", "stats", "--json")
    figures = json.loads(stats.stdout)
    assert figures["deflections"] == 1
    assert figures["by_article"][0]["id"] == 1
    assert figures["by_article"][0]["deflections"] == 1
