"""The customer's status pages (web/portal/) against the real daemon on loopback: the
link in the acknowledgement opens the ticket's page; a reply typed there goes through
the spool and the pipeline like a mail (threaded, deduplicated, reopening, telling the
agents); "solved for me" and "still broken" change the status with the customer named
in the history; links are signed, expire and die with the secret; every change is a
POST with a CSRF token bound to the browser and the link; GET changes nothing; the list
of a customer's tickets is only ever mailed."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from helpdesk import clock
from helpdesk.outgoing import portal_links
from helpdesk.store.models import Event, Message, Outbox
from helpdesk.web.portal import reply
from tests.helpers import engine_for, free_port, invoke_cli, make_mail, wait_ticket, wait_until
from tests.web_helpers import CSRF, Desk

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

CAROL = "carol@customer.test"
STATUS_LINK = re.compile(r"(http://\S+/portal/ticket/[A-Za-z0-9_.-]+)")
LIST_LINK = re.compile(r"(http://\S+/portal/tickets/[A-Za-z0-9_.-]+)")
FORM = re.compile(r'name="form" value="([^"]+)"')
STATUS = re.compile(r'name="status" value="([^"]+)"')


@dataclass
class Customer:
    desk: Desk
    link: str  # from the acknowledgement

    def client(self) -> httpx.Client:
        return self.desk.client()


def mails(desk: Desk, address: str = CAROL, subject: str = "") -> list[EmailMessage]:
    return desk.mails_to(address, subject)


def text_of(msg: EmailMessage) -> str:
    return str(msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]


def link_in(desk: Desk, pattern: re.Pattern[str], count: int, subject: str = "") -> str:
    found = wait_until(lambda: len(mails(desk, subject=subject)) >= count and
                       mails(desk, subject=subject), timeout=15, what=f"{count} mails to carol")
    match = pattern.search(text_of(found[count - 1]))
    assert match, text_of(found[count - 1])
    return match[1]


def local(link: str) -> str:
    """The path of a link (the client has the base URL)."""
    return "/" + link.split("/", 3)[3]


@pytest.fixture
def customer(make_desk: Callable[..., Desk]) -> Customer:
    """carol wrote in; her acknowledgement carries the link to HD-1's page."""
    desk = make_desk(http={"listen": "127.0.0.1:0", "public": f"127.0.0.1:{free_port()}"},
                     portal={"enabled": True}, sla={"high": {"first_response": "1h"},
                                                    "normal": {"first_response": "8h"}})
    desk.deliver(make_mail(body="Help, the printer is on fire.\n<script>alert(1)</script>"))
    wait_ticket(desk.settings, 1)
    return Customer(desk, link_in(desk, STATUS_LINK, 1))


def post(client: httpx.Client, page: httpx.Response, action: str,
         data: dict[str, Any] | None = None) -> httpx.Response:
    """Submit a form of `page` the way a browser does."""
    form = {"csrf_token": CSRF.search(page.text)[1]}  # type: ignore[index]
    return client.post(action, data={**form, **(data or {})})


def reply_form(page: httpx.Response) -> dict[str, str]:
    return {"form": FORM.search(page.text)[1]}  # type: ignore[index]


def session(desk: Desk) -> Session:
    return Session(engine_for(desk.settings))


def portal_messages(desk: Desk) -> list[Message]:
    with session(desk) as s:
        return list(s.exec(select(Message).where(Message.route == "portal")).all())


def history(desk: Desk, kind: str = "change") -> list[Event]:
    with session(desk) as s:
        return list(s.exec(select(Event).where(Event.kind == kind)).all())


# -- the page -------------------------------------------------------------------------------

def test_the_acknowledgement_links_a_page_that_shows_the_ticket(customer: Customer) -> None:
    client = customer.client()
    page = client.get(local(customer.link))
    assert page.status_code == 200, page.text
    assert "Printer on fire" in page.text and "HD-1" in page.text
    assert "Received" in page.text
    assert "We answer normal-priority requests within 8 hours." in page.text
    assert "Help, the printer is on fire." in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>" not in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert 'name="viewport"' in page.text
    assert "hd_portal" in page.headers["set-cookie"] and "HttpOnly" in page.headers["set-cookie"]
    css = client.get("/portal/static/portal.css")
    assert css.status_code == 200 and "#1f4e8c" in css.text
    assert client.get("/portal/static/../../config.toml").status_code == 404
    assert client.get("/portal/static/base.html.j2").status_code == 404


def test_the_page_shows_the_public_conversation_only(customer: Customer) -> None:
    settings = customer.desk.settings
    invoke_cli(settings, "tickets", "assign", "HD-1", "alice", "--as", "alice")
    invoke_cli(settings, "tickets", "note", "HD-1", "--as", "alice", "-m", "Secret note xyzzy")
    invoke_cli(settings, "tickets", "reply", "HD-1", "--as", "alice", "-m",
               "Please unplug it.")
    page = customer.client().get(local(customer.link))
    assert "Please unplug it." in page.text and "Alice Agent" in page.text
    assert "xyzzy" not in page.text
    assert "alice@staff.test" not in page.text
    assert "Waiting for your answer" in page.text  # a reply without a status waits
    # the reply mail carries the link too
    reply = wait_until(lambda: mails(customer.desk, subject="Printer")[1:], timeout=15)
    assert STATUS_LINK.search(text_of(reply[-1]))


def test_the_reply_form_answers_the_last_message_the_page_shows(customer: Customer) -> None:
    """The page and its reply form are read at one moment: an agent's reply committed
    while the page is read is neither shown nor named as what the customer answers."""
    desk = customer.desk
    client = customer.client()
    answered: list[int] = []

    def agent_replies_mid_read(_conn: Any, _cursor: Any, statement: str,
                               *_args: Any) -> None:
        if not answered and "FROM message" in statement:
            answered.append(invoke_cli(desk.settings, "tickets", "reply", "HD-1", "--as",
                                       "alice", "-m", "Please unplug it.").exit_code)

    engine = desk.daemon.daemon.engine
    event.listen(engine, "after_cursor_execute", agent_replies_mid_read)
    try:
        page = client.get(local(customer.link))
    finally:
        event.remove(engine, "after_cursor_execute", agent_replies_mid_read)
    assert answered == [0]
    with session(desk) as s:
        agents_reply = s.exec(select(Message.message_id).where(
            Message.ticket_id == 1, Message.direction == "out",
            Message.body_text.contains("unplug"))).one()  # type: ignore[attr-defined]
    drawn = reply.read_form_token(desk.settings, 1, reply_form(page)["form"])
    assert drawn is not None
    assert "Please unplug it." not in page.text
    assert drawn.in_reply_to and drawn.in_reply_to != agents_reply
    again = client.get(local(customer.link))
    assert "Please unplug it." in again.text
    assert reply.read_form_token(desk.settings, 1, reply_form(again)["form"]).in_reply_to \
        == agents_reply  # type: ignore[union-attr]


def test_being_worked_on_names_the_agent_and_team(customer: Customer) -> None:
    invoke_cli(customer.desk.settings, "tickets", "assign", "HD-1", "alice", "--as", "alice")
    invoke_cli(customer.desk.settings, "tickets", "status", "HD-1", "open", "--as", "alice")
    page = customer.client().get(local(customer.link))
    assert "Being worked on by Alice Agent from Support" in page.text


# -- replying from the page -----------------------------------------------------------------

def test_a_reply_enters_the_pipeline_like_a_mail_and_once(customer: Customer) -> None:
    client = customer.client()
    page = client.get(local(customer.link))
    data = {**reply_form(page), "text": "It is still smoking."}
    answer = post(client, page, f"{local(customer.link)}/reply", data)
    assert answer.status_code == 303, answer.text
    again = post(client, page, f"{local(customer.link)}/reply", data)  # a double submit
    assert again.status_code == 303
    wait_until(lambda: portal_messages(customer.desk), timeout=15, what="the portal reply")
    done = client.get(answer.headers["location"])
    assert "We received your message" in done.text
    wait_until(lambda: "It is still smoking." in client.get(local(customer.link)).text,
               timeout=15, what="the reply on the page")
    stored = portal_messages(customer.desk)
    assert len(stored) == 1
    message = stored[0]
    assert message.ticket_id == 1 and message.from_addr == CAROL
    assert message.threaded_by.startswith("reply address support+hd-1-"), message.threaded_by
    with session(customer.desk) as s:
        first = s.exec(select(Message).where(Message.route == "smtp")).first()
    assert first is not None and message.in_reply_to == first.message_id
    assert [e.actor for e in history(customer.desk, "reply")] == [CAROL]


def test_an_empty_or_forged_reply_is_refused(customer: Customer) -> None:
    client = customer.client()
    page = client.get(local(customer.link))
    empty = post(client, page, f"{local(customer.link)}/reply", {**reply_form(page), "text": " "})
    assert empty.status_code == 400
    forged = post(client, page, f"{local(customer.link)}/reply",
                  {"form": "x", "text": "hello"})
    assert forged.status_code == 403
    huge = post(client, page, f"{local(customer.link)}/reply",
                {**reply_form(page), "text": "x" * 70_000})
    assert huge.status_code == 413
    assert portal_messages(customer.desk) == []


# -- solved / still broken -----------------------------------------------------------------

def test_solved_and_still_broken(customer: Customer) -> None:
    client = customer.client()
    page = client.get(local(customer.link))
    assert "Solved for me" in page.text and "Still broken" not in page.text
    answer = post(client, page, f"{local(customer.link)}/solved",
                  {"status": STATUS.search(page.text)[1]})  # type: ignore[index]
    assert answer.status_code == 303
    assert wait_ticket(customer.desk.settings, 1)["status"] == "resolved"
    change = history(customer.desk)[-1]
    assert (change.actor, change.field, change.new) == (CAROL, "status", "resolved")
    assert "status page" in change.detail
    page = client.get(answer.headers["location"])
    assert "Resolved — tell us if it isn" in page.text and "Still broken" in page.text
    # the solved form again, stale now: 409 with the page as it stands, nothing applied
    stale = post(client, page, f"{local(customer.link)}/solved", {"status": "new"})
    assert stale.status_code == 409 and "changed since you opened" in stale.text
    broken = post(client, page, f"{local(customer.link)}/broken", {"status": "resolved"})
    assert broken.status_code == 303
    assert wait_ticket(customer.desk.settings, 1)["status"] == "open"
    assert history(customer.desk)[-1].actor == CAROL


def test_get_changes_nothing_and_posts_need_the_token(customer: Customer) -> None:
    client = customer.client()
    page = client.get(local(customer.link))
    for _ in range(3):
        client.get(local(customer.link))
    assert client.get(f"{local(customer.link)}/solved").status_code == 405
    no_token = client.post(f"{local(customer.link)}/solved", data={"status": "new"})
    assert no_token.status_code == 403
    other = customer.client()  # another browser: another cookie, so the token is not its
    other.get(local(customer.link))
    stolen = post(other, page, f"{local(customer.link)}/solved", {"status": "new"})
    assert stolen.status_code == 403
    # a token drawn for another link (the ask form) is no token for this one
    find = client.get("/portal/")
    wrong_link = post(client, find, f"{local(customer.link)}/solved", {"status": "new"})
    assert wrong_link.status_code == 403
    assert wait_ticket(customer.desk.settings, 1)["status"] == "new"
    assert history(customer.desk) == []


# -- links --------------------------------------------------------------------------------

def test_tampered_foreign_and_rotated_links_are_a_clear_404(customer: Customer) -> None:
    client = customer.client()
    token = customer.link.rsplit("/", 1)[1]
    rotated = customer.desk.settings.model_copy(
        update={"helpdesk": customer.desk.settings.helpdesk.model_copy(
            update={"secret": "a-new-secret"})})
    for bad in (token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"),
                portal_links.list_token(customer.desk.settings, CAROL),
                portal_links.ticket_token(rotated, 1), "x" * 1000, "%00", "1"):
        page = client.get(f"/portal/ticket/{bad}")
        assert page.status_code == 404, bad
        assert "This link is not valid" in page.text and "Mail me a link" in page.text
    assert client.get("/portal/ticket/" + portal_links.ticket_token(
        customer.desk.settings, 99)).status_code == 404


def test_an_expired_link_offers_a_fresh_one_to_the_customer(customer: Customer) -> None:
    settings = customer.desk.settings
    old = portal_links.ticket_token(settings, 1, clock.now() - timedelta(days=31))
    client = customer.client()
    page = client.get(f"/portal/ticket/{old}")
    assert page.status_code == 410 and "This link has expired" in page.text
    refused = post(client, page, f"/portal/ticket/{old}/solved", {"status": "new"})
    assert refused.status_code == 410
    sent = post(client, page, f"/portal/ticket/{old}/fresh")
    assert sent.status_code == 200 and "Check your mail" in sent.text
    fresh = link_in(customer.desk, STATUS_LINK, 1, subject="fresh link")
    assert client.get(local(fresh)).status_code == 200
    assert fresh.rsplit("/", 1)[1] != old


# -- the list of a customer's tickets -------------------------------------------------------

def test_the_list_link_is_mailed_never_shown(customer: Customer) -> None:
    desk = customer.desk
    desk.deliver(make_mail(subject="Second problem", body="The scanner too."))
    wait_ticket(desk.settings, 2)
    client = customer.client()
    find = client.get("/portal/")
    known = post(client, find, "/portal/ask", {"address": "Carol@Customer.test"})
    unknown = post(client, find, "/portal/ask", {"address": "nobody@customer.test"})
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text and "/portal/tickets/" not in known.text
    link = link_in(desk, LIST_LINK, 1, subject="Your requests")
    listing = client.get(local(link))
    assert listing.status_code == 200
    assert "Printer on fire" in listing.text and "Second problem" in listing.text
    assert "Received" in listing.text
    ticket_link = re.search(r'href="(/portal/ticket/[^"]+)"', listing.text)[1]  # type: ignore[index]
    assert client.get(ticket_link).status_code == 200
    with session(desk) as s:
        assert not s.exec(select(Outbox).where(Outbox.recipient == "nobody@customer.test")).all()


def test_list_links_are_rate_limited(customer: Customer) -> None:
    client = customer.client()
    find = client.get("/portal/")
    for _ in range(5):
        assert post(client, find, "/portal/ask", {"address": CAROL}).status_code == 200
    with session(customer.desk) as s:
        rows = s.exec(select(Outbox).where(Outbox.kind == "portal-list")).all()
    assert len(rows) == customer.desk.settings.portal.links_per_hour


def test_an_agents_address_is_shown_only_when_configured(make_desk: Callable[..., Desk]) -> None:
    desk = make_desk(http={"listen": "127.0.0.1:0", "public": f"127.0.0.1:{free_port()}"},
                     portal={"enabled": True, "show_agent_addresses": True,
                             "name": "Acme Care", "colour": "#aa0000"})
    desk.deliver(make_mail())
    wait_ticket(desk.settings, 1)
    link = link_in(desk, STATUS_LINK, 1)
    invoke_cli(desk.settings, "tickets", "reply", "HD-1", "--as", "alice", "-m", "On it.")
    page = desk.client().get(local(link))
    assert "Alice Agent &lt;alice@staff.test&gt;" in page.text
    assert "Acme Care" in page.text
    assert "#aa0000" in desk.client().get("/portal/static/portal.css").text


def _agent_acts(desk: Desk, name: str, text: str, *commands: tuple[str, str]) -> None:
    """An agent's reply with #commands, through the one way every door takes."""
    from helpdesk.agents import actions
    from helpdesk.agents.commands import Reply, command
    from helpdesk.config import agents
    from helpdesk.store.models import Ticket

    assert desk.settings.source is not None
    directory = agents.load(desk.settings.source.parent / "agents.toml")
    with session(desk) as s:
        ticket = s.get(Ticket, 1)
        agent = directory.agent(name)
        assert ticket is not None and agent is not None
        outcome = actions.run_commands(s, desk.settings, directory, ticket, agent,
                                       Reply(tuple(command(c, a) for c, a in commands), text))
        assert not outcome.errors, outcome.errors
        s.commit()


def test_a_reply_held_for_review_shows_only_once_released(
        make_desk: Callable[..., Desk]) -> None:
    desk = make_desk(http={"listen": "127.0.0.1:0", "public": f"127.0.0.1:{free_port()}"},
                     portal={"enabled": True},
                     queue={"support": {"team": "support", "review": True}})
    desk.deliver(make_mail())
    wait_ticket(desk.settings, 1)
    link = link_in(desk, STATUS_LINK, 1)
    client = desk.client()
    _agent_acts(desk, "alice", "Fixed: a new fuser.", ("status", "resolved"))
    page = client.get(local(link))
    assert "new fuser" not in page.text and "Solved for me" in page.text
    _agent_acts(desk, "lisa", "", ("approve", ""))
    page = client.get(local(link))
    assert "Fixed: a new fuser." in page.text
    assert "Resolved — tell us if it isn" in page.text



def test_status_notices_and_reminders_carry_the_link(customer: Customer) -> None:
    """Besides the acknowledgement and replies (above): the resolved notice, and the
    scheduler's reminder of a ticket waiting for the customer."""
    desk = customer.desk
    _agent_acts(desk, "alice", "", ("status", "resolved"))
    notice = wait_until(lambda: mails(desk, subject="is resolved"), timeout=15)
    assert STATUS_LINK.search(text_of(notice[0]))


@pytest.mark.parametrize("kind", ["stale-reminder", "survey"])
def test_the_stale_reminder_and_the_survey_carry_the_link(make_settings: Any,
                                                          kind: str) -> None:
    import email
    import email.policy

    from tests.sched import at, make_ticket, run_pass, set_status
    from tests.sched import mails as outbox_mails

    settings = make_settings({"portal": {"enabled": True},
                              "stale": {"pending_remind": "3d"},
                              "survey": {"enabled": True, "delay": "1h"}})
    tid = make_ticket(settings, at("2026-11-30T09:00"))
    set_status(settings, tid, "pending" if kind == "stale-reminder" else "closed",
               at("2026-11-30T10:00"))
    assert len(run_pass(settings, at("2026-12-03T10:00"))) == 1
    [row] = outbox_mails(settings, kind)
    msg = email.message_from_bytes(row.raw, policy=email.policy.default)
    link = STATUS_LINK.search(text_of(msg))  # type: ignore[arg-type]
    assert link, text_of(msg)  # type: ignore[arg-type]
    clock.freeze(at("2026-12-03T10:00"))
    try:
        checked = portal_links.check_ticket(settings, link[1].rsplit("/", 1)[1])
    finally:
        clock.set_source(None)
    assert (checked.verdict, checked.value) == ("valid", tid)


def test_linked_requests_of_the_same_customer_are_shown_never_anothers(
        customer: Customer) -> None:
    desk = customer.desk
    desk.deliver(make_mail(subject="Second printer", body="The other one too.",
                           message_id="<second@customer.test>"))
    dave = "dave@other.test"
    desk.deliver(make_mail(sender=f"Dave <{dave}>", subject="Dave's printer",
                           message_id="<dave@other.test>"), sender=dave)
    wait_ticket(desk.settings, 3)
    _agent_acts(desk, "alice", "", ("link", "HD-2"))
    _agent_acts(desk, "alice", "", ("parent", "HD-3"))
    client = customer.client()
    page = client.get(local(customer.link))
    assert "Linked requests" in page.text
    assert "Related" in page.text and "HD-2: Second printer" in page.text
    assert "HD-3" not in page.text and "Dave" not in page.text  # another customer's
    second = re.search(r'href="(http://[^"]+/portal/ticket/[^"]+)">HD-2', page.text)
    assert second is not None
    assert "The other one too." in client.get(local(second.group(1))).text

    _agent_acts(desk, "alice", "", ("merge", "HD-2"))
    merged = client.get(local(customer.link))
    assert "Merged into" in merged.text and "HD-2: Second printer" in merged.text
