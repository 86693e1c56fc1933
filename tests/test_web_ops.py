"""Links and merges in the desk (the registry's command forms on the ticket page),
against the real daemon: the ticket pages show parent, children, related and merged
tickets, a resolved parent warns of open children, a merged ticket's page says where
it went, and only an admin undoes a merge."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from helpdesk.config.settings import Settings
from tests.agent_desk import AGENTS, body, wait_mails_to
from tests.helpers import DaemonThread, RelaySink, make_mail, send, ticket, wait_ticket
from tests.ops_helpers import signed_in_browsers
from tests.test_canned_replies import RESET, write_replies
from tests.test_web_actions import Browsers, done, form_of, new_ticket

CAROL = "carol@customer.test"
ADA = """
[[agent]]
name = "ada"
email = "ada@staff.test"
teams = ["support"]
role = "admin"
"""


@pytest.fixture
def desk_overrides() -> dict[str, Any]:
    return {"agents": AGENTS + ADA, "web": {"enabled": True}}


@pytest.fixture
def browsers(desk: tuple[Settings, DaemonThread]) -> Iterator[Browsers]:
    yield from signed_in_browsers(desk)


def _command(browser: Any, number: int, name: str, arg: str = "") -> Any:
    return browser.post(f"/desk/ticket/{number}/command",
                        data={**form_of(browser, number), "command": name, "arg": arg})


def test_links_show_on_both_pages_and_a_resolved_parent_warns_of_open_children(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    settings, daemon = desk
    new_ticket(daemon, relay, 1)
    new_ticket(daemon, relay, 2, subject="Scanner smokes too")
    alice = browsers("alice")
    page = alice.get("/desk/ticket/2")
    assert 'name="command" value="parent"' in page.text  # the registry's own form
    done(_command(alice, 2, "parent", "HD-1"), 2)
    done(_command(alice, 2, "link", "1"), 2)
    child, parent = alice.get("/desk/ticket/2").text, alice.get("/desk/ticket/1").text
    assert "<dt>Parent</dt><dd>" in child and 'href="/desk/ticket/1">HD-1</a> Printer on fire' \
        in child
    assert "<dt>Children</dt>" in parent and 'href="/desk/ticket/2">HD-2</a> Scanner' in parent
    assert "<dt>Related</dt>" in parent and "<dt>Related</dt>" in child
    assert "Child tickets still open" not in parent

    done(alice.post("/desk/ticket/1/fields", data={**form_of(alice, 1), "status": "resolved"}),
         1)
    parent = alice.get("/desk/ticket/1").text
    assert "Child tickets still open" in parent and "HD-2</a> Scanner smokes too" in parent
    assert [e["detail"] for e in ticket(settings, 1)["events"]
            if e["kind"] == "open-children"] == ["HD-2 (open)"]
    # a bad argument is the registry's refusal, on the page, nothing applied
    refused = _command(alice, 2, "parent", "HD-99")
    assert refused.status_code == 422 and "no ticket HD-99" in refused.text


def test_a_merged_tickets_page_says_where_it_went_and_only_an_admin_undoes_it(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    settings, daemon = desk
    new_ticket(daemon, relay, 1)
    new_ticket(daemon, relay, 2, subject="Scanner smokes too")
    alice, lisa, ada = browsers("alice"), browsers("lisa"), browsers("ada")
    done(_command(alice, 2, "merge", "HD-1"), 2)
    gone = alice.get("/desk/ticket/2").text
    assert "Merged into HD-1" in gone and "by alice" in gone
    survivor = alice.get("/desk/ticket/1").text
    assert "Merged into this one" in survivor and "an admin may undo it until" in survivor
    assert "Scanner smokes too" in survivor  # carol's second mail is on HD-1 now
    assert "you may undo it" in ada.get("/desk/ticket/1").text
    # the pointer takes no more replies or commands, only #unmerge
    stale = alice.post("/desk/ticket/2/reply", data={**form_of(alice, 2), "text": "Hello?"})
    assert stale.status_code == 422 and "this ticket was merged into HD-1" in stale.text

    refused = _command(lisa, 1, "unmerge", "HD-2")
    assert refused.status_code == 422 and "only an admin may undo a merge" in refused.text
    assert ticket(settings, 2)["messages"] == []
    done(_command(ada, 1, "unmerge", "HD-2"), 1)
    back = ticket(settings, 2)
    assert [m["subject"] for m in back["messages"]] == ["Scanner smokes too"]
    assert back["status"] == "open"
    assert "Merged into" not in alice.get("/desk/ticket/2").text


def test_the_reply_box_offers_canned_replies_with_a_search_that_needs_no_script(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    settings, daemon = desk
    write_replies(settings, **{"printer-reset": RESET, "refund": "Refunds\n\nDone, {{ "
                               "customer_name }}."})
    new_ticket(daemon, relay, 1)
    alice = browsers("alice")
    page = alice.get("/desk/ticket/1").text
    assert '<option value="printer-reset">printer-reset: Printer reset</option>' in page
    assert '<option value="refund">refund: Refunds</option>' in page
    found = alice.get("/desk/ticket/1", params={"replies": "PRINTER"}).text
    assert 'value="printer-reset"' in found and 'value="refund"' not in found
    assert 'name="replies" type="search" value="PRINTER"' in found

    as_note = alice.post("/desk/ticket/1/note", data={**form_of(alice, 1),
                                                      "text": "#reply refund\nhi"})
    assert as_note.status_code == 422 and "#note keeps the reply internal" in as_note.text
    done(alice.post("/desk/ticket/1/reply", data={**form_of(alice, 1), "canned": "refund",
                                                  "text": "Hi Carol,"}), 1)
    answer = wait_mails_to(relay, CAROL, 2)[1]
    assert "Hi Carol,\n\nRefunds\n\nDone, Carol Customer." in body(answer)


@pytest.mark.parametrize("desk", [{"queue": {"billing": {"team": "support"}}}], indirect=True)
def test_time_from_the_reply_and_note_boxes_shows_per_queue_on_the_dashboard(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    settings, daemon = desk
    new_ticket(daemon, relay, 1)
    alice, lisa = browsers("alice"), browsers("lisa")
    assert 'name="time"' in alice.get("/desk/ticket/1").text
    done(alice.post("/desk/ticket/1/reply", data={**form_of(alice, 1), "text": "On it.",
                                                  "time": "25m"}), 1)
    done(alice.post("/desk/ticket/1/fields", data={**form_of(alice, 1), "queue": "billing"}), 1)
    done(alice.post("/desk/ticket/1/note", data={**form_of(alice, 1), "text": "Vendor called.",
                                                 "time": "1h5m"}), 1)
    bad = alice.post("/desk/ticket/1/note", data={**form_of(alice, 1), "text": "More.",
                                                  "time": "lots"})
    assert bad.status_code == 422 and "not a time" in bad.text and "More." in bad.text
    assert [e["new"] for e in ticket(settings, 1)["events"] if e["kind"] == "time"] == [
        "25 min", "65 min"]
    page = lisa.get("/desk/dashboard").text
    assert '<data id="time-total" value="90">' in page
    queues = page[page.index('id="time-by-queue"'):page.index('id="time-by-agent"')]
    assert '<th scope="row">billing</th><td><data value="65">' in queues
    assert '<th scope="row">support</th><td><data value="25">' in queues
    assert '<a href="/desk/ticket/1">#1</a></th><td><data value="90">' in page


OMAR = """
[[agent]]
name = "omar"
email = "omar@staff.test"
teams = ["ops"]
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("desk", [{"agents": AGENTS + ADA + OMAR, "queue": {
    "ops": {"team": "ops", "address": "ops@example.test"}}}], indirect=True)
def test_a_ticket_the_agent_may_not_see_is_no_ticket_to_link_or_merge_into(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    settings, daemon = desk
    new_ticket(daemon, relay, 1)  # support: not omar's
    send(daemon.port, make_mail(to="ops@example.test", subject="Server down"),
         rcpts=["ops@example.test"])
    wait_ticket(settings, 2, lambda t: t["queue"] == "ops")
    omar = browsers("omar")
    for name in ("merge", "link", "parent"):
        refused = _command(omar, 2, name, "HD-1")
        assert refused.status_code == 422 and "no ticket HD-1" in refused.text
    assert ticket(settings, 1)["links"]["merged_here"] == []
    done(_command(browsers("ada"), 2, "link", "HD-1"), 2)  # an admin sees both
