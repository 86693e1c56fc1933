"""The desk's queue pages against the real daemon on loopback, httpx as the browser:
tickets mailed in over SMTP in "unassigned" with their counts, "my tickets" after an
#assign by mail, the other team's agent seeing none of it (a 404 for a filter naming a
foreign queue), the sort orders and SLA views from the scheduler's own pass, bulk
assign and close naming the agent in the history with a stale row refused, hostile
subjects escaped, and the customer page."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.store import db, queries, row_facts
from tests import agent_mails
from tests.agent_desk import reply_to, wait_mails_to
from tests.agents_toml import agent, agents_toml, team
from tests.helpers import (
    DaemonThread,
    RelaySink,
    engine_for,
    invoke_cli,
    make_mail,
    send,
    ticket,
    wait_ticket,
)
from tests.sched import (
    SLA,
    agent_reply,
    at,
    customer_reply,
    make_ticket,
    run_pass,
    step_keys,
)

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ROW = re.compile(r'<th scope="row"><a href="/desk/ticket/(\d+)">')

AGENTS = agents_toml(agent("alice", "support"), agent("bob", "support"),
                     agent("lisa", "support", role="lead"), agent("olga", "ops"),
                     team("support", lead="lisa"))
CONFIG: dict[str, Any] = {
    "web": {"enabled": True},
    "queue": {"ops": {"team": "ops", "address": "ops@example.test"},
              "billing": {"review": True}},
}


class Desk:
    def __init__(self, settings: Settings, daemon: DaemonThread) -> None:
        self.settings, self.daemon = settings, daemon
        self.clients: list[httpx.Client] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.daemon.daemon.public.port}"  # type: ignore[union-attr]

    def sign_in(self, name: str) -> httpx.Client:
        """The one-time link the CLI prints, opened and confirmed as a browser does."""
        browser = httpx.Client(base_url=self.url, follow_redirects=False, timeout=15)
        self.clients.append(browser)
        result = invoke_cli(self.settings, "web", "login-link", name)
        assert result.exit_code == 0, result.output
        link = result.stdout.splitlines()[0].replace("http://127.0.0.1:0", self.url)
        page = browser.get(link)
        t = parse_qs(urlparse(link).query)["t"][0]
        answer = browser.post("/desk/login/confirm", data={"t": t, "csrf_token": token(page)})
        assert answer.status_code == 303, answer.text
        return browser


@pytest.fixture
def make_desk(desk_settings: Callable[..., Settings],
              start_daemon: Callable[..., DaemonThread]) -> Iterator[Callable[..., Desk]]:
    made: list[Desk] = []

    def make(before: Callable[[Settings], None] | None = None, **extra: Any) -> Desk:
        settings = desk_settings(agents=AGENTS, **{**CONFIG, **extra})
        if before is not None:
            before(settings)
        made.append(Desk(settings, start_daemon(settings)))
        return made[-1]
    yield make
    for desk in made:
        for client in desk.clients:
            client.close()


def token(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, page.text
    return found[1]


def rows(page: httpx.Response) -> list[int]:
    """The ticket numbers of a queue page, in the order shown."""
    assert page.status_code == 200, page.text
    return [int(n) for n in ROW.findall(page.text)]


def count(page: httpx.Response, title: str) -> int:
    found = re.search(rf">{re.escape(title)}</a> <span class=\"count\">\((\d+)\)", page.text)
    assert found, f"no tab {title!r}"
    return int(found[1])


def versions(page: httpx.Response) -> dict[int, str]:
    return {int(i): v for i, v in re.findall(r'name="version-(\d+)" value="([^"]+)"', page.text)}


def events(settings: Settings, number: int, field: str) -> list[tuple[str, str]]:
    return [(e["actor"], e["new"]) for e in ticket(settings, number)["events"]
            if e["kind"] == "change" and e["field"] == field]


def mail_in(desk: Desk, subject: str, *, sender: str = "Carol <carol@customer.test>",
            to: str = "support@example.test") -> None:
    send(desk.daemon.port, make_mail(subject=subject, sender=sender, to=to),
         sender=sender.split("<")[-1].rstrip(">"), rcpts=[to])


def assign_by_mail(desk: Desk, note: EmailMessage, typed: str) -> None:
    to = reply_to(note)
    raw = agent_mails.gmail(typed=typed, sender="Alice <alice@staff.test>", to=to,
                            original=note)
    send(desk.daemon.port, raw, sender="alice@staff.test", rcpts=[to])


# -- views, counts, permissions (SQLite and PostgreSQL) -------------------------------------

def test_mailed_tickets_are_unassigned_then_mine_and_hidden_from_other_teams(
        make_desk: Callable[..., Desk], relay: RelaySink) -> None:
    desk = make_desk()
    mail_in(desk, "Printer on fire")
    mail_in(desk, '<script>alert("x")</script> & <b>bold</b>',
            sender="<img src=x onerror=alert(1)> <eve@customer.test>")
    mail_in(desk, "Toner empty")
    mail_in(desk, "Server down", sender="Dave <dave@other.test>", to="ops@example.test")
    for n in range(1, 5):
        wait_ticket(desk.settings, n)
    assert ticket(desk.settings, 4)["queue"] == "ops"

    alice = desk.sign_in("alice")
    page = alice.get("/desk/queue/unassigned")
    assert sorted(rows(page)) == [1, 2, 3]  # not the ops ticket
    assert count(page, "Unassigned") == 3 and count(page, "My tickets") == 0
    assert count(page, "All open") == 3
    # hostile text from mail is shown, never run
    assert "<script>" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" \
        in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")

    # alice takes HD-1 by mail; the desk shows it as hers
    note = wait_mails_to(relay, "alice@staff.test", 1)[0]
    assert "[HD-1]" in str(note["Subject"])
    assign_by_mail(desk, note, "#assign me")
    wait_ticket(desk.settings, 1, lambda t: t["assignee"] == "alice", "HD-1 assigned")
    home = alice.get("/desk/")
    assert rows(home) == [1] and count(home, "My tickets") == 1
    assert count(home, "Unassigned") == 2 and "(alice, agent)" in home.text
    assert sorted(rows(alice.get("/desk/queue/all?assignee=none"))) == [2, 3]
    assert rows(alice.get("/desk/queue/all?customer=carol@customer.test")) == [1, 3]
    assert alice.get("/desk/queue/all?queue=ops").status_code == 404
    assert alice.get("/desk/queue/nonsense").status_code == 404
    assert alice.get("/desk/queue/all?status=bogus").status_code == 404

    # olga works ops: she sees its ticket only, and nothing of support's
    olga = desk.sign_in("olga")
    page = olga.get("/desk/queue/unassigned")
    assert rows(page) == [4] and count(page, "Unassigned") == 1
    assert count(page, "All open") == 1 and "Printer on fire" not in page.text
    refused = olga.get("/desk/queue/all?queue=support")
    assert refused.status_code == 404 and "Printer on fire" not in refused.text
    assert olga.get("/desk/customer/carol@customer.test").status_code == 404

    # the lead sees every queue
    lisa = desk.sign_in("lisa")
    page = lisa.get("/desk/queue/unassigned")
    assert sorted(rows(page)) == [2, 3, 4] and count(page, "Unassigned") == 3
    assert rows(lisa.get("/desk/queue/all?queue=ops")) == [4]

    # the customer page: their tickets and history, a 404 for an unknown customer
    carol = alice.get("/desk/customer/carol@customer.test")
    assert sorted(rows(carol)) == [1, 3]
    assert "Printer on fire" in carol.text and "assignee" in carol.text
    assert alice.get("/desk/customer/99999").status_code == 404
    assert alice.get("/desk/customer/99999999999999999999999").status_code == 404
    assert alice.get("/desk/customer/%C2%B2").status_code == 404  # a digit, not ASCII
    assert alice.get("/desk/customer/nobody@nowhere.test").status_code == 404

    # HD-1 moved to another team's queue stays alice's to see while it is assigned to her
    assign_by_mail(desk, note, "#queue ops")
    wait_ticket(desk.settings, 1, lambda t: t["queue"] == "ops", "HD-1 moved to ops")
    home = alice.get("/desk/")
    assert rows(home) == [1] and count(home, "My tickets") == 1
    assert 'queue=ops"' not in home.text  # not a queue of hers to list
    assert alice.get("/desk/ticket/1").status_code == 200
    assert rows(alice.get("/desk/queue/all?assignee=me")) == [1]
    assert 'href="/desk/ticket/1#' in alice.get("/desk/search", params={"q": "printer"}).text
    assert rows(olga.get("/desk/queue/unassigned")) == [4]  # assigned: not unassigned
    assert sorted(rows(olga.get("/desk/queue/all"))) == [1, 4]  # now in olga's queue too
    # the other agents of support no longer see it; bob has no claim on it
    bob = desk.sign_in("bob")
    assert bob.get("/desk/ticket/1").status_code == 404
    assert "Printer on fire" not in bob.get("/desk/search", params={"q": "printer"}).text


# -- sorting and the SLA views --------------------------------------------------------------

NOW = at("2025-03-03T12:00:00")


def _sla_tickets(settings: Settings) -> None:
    """Four tickets made at chosen moments, then the scheduler's pass at NOW: HD-2's first
    response breached (priority raised), HD-1 warned (at risk), HD-3 without SLA (low),
    HD-4 just opened."""
    make_ticket(settings, NOW - timedelta(hours=7), priority="normal", assignee="",
                subject="normal, 7h old")
    make_ticket(settings, NOW - timedelta(hours=2), priority="high", assignee="",
                subject="high, 2h old")
    make_ticket(settings, NOW - timedelta(minutes=30), priority="low", assignee="",
                subject="low, 30m old", customer="dave@other.test")
    make_ticket(settings, NOW - timedelta(minutes=10), priority="critical", assignee="",
                subject="critical, 10m old")
    run_pass(settings, NOW)
    clock.freeze(NOW)


@SQLITE_ONLY
def test_sort_orders_and_the_sla_views(make_desk: Callable[..., Desk]) -> None:
    desk = make_desk(_sla_tickets, sla=SLA)
    lisa = desk.sign_in("lisa")
    # HD-2 breached at 11:00, so the scheduler raised it to critical; the oldest first
    assert rows(lisa.get("/desk/queue/all")) == [2, 4, 1, 3]
    assert rows(lisa.get("/desk/queue/all?sort=age")) == [1, 2, 3, 4]
    # next SLA deadline: HD-4's warning 12:35, HD-1's breach 13:00, HD-2's resolution
    # warning 16:00 (6h of 8h), HD-3 has none
    assert rows(lisa.get("/desk/queue/all?sort=sla")) == [4, 1, 2, 3]
    assert rows(lisa.get("/desk/queue/all?sort=activity"))[0] == 2  # the breach changed it
    assert lisa.get("/desk/queue/all?sort=random").status_code == 404

    page = lisa.get("/desk/queue/overdue")
    assert rows(page) == [2] and count(page, "Overdue SLA") == 1
    assert "first response overdue by 1h 0m" in page.text
    page = lisa.get("/desk/queue/at-risk")
    assert rows(page) == [1] and count(page, "SLA at risk") == 1
    assert "first response due in 1h 0m" in page.text
    assert "no SLA" in lisa.get("/desk/queue/all?customer=dave@other.test").text
    # paging is bounded and counted
    page = lisa.get("/desk/queue/all?sort=age&limit=25&page=1")
    assert "Page 1 of 1" in page.text
    assert lisa.get("/desk/queue/all?limit=1000").status_code == 404
    assert lisa.get("/desk/queue/all?page=100000").status_code == 404


# -- bulk actions ---------------------------------------------------------------------------

@SQLITE_ONLY
def test_bulk_assign_and_close_name_the_agent_and_refuse_stale_rows(
        make_desk: Callable[..., Desk], relay: RelaySink) -> None:
    desk = make_desk()
    for subject in ("One", "Two", "Three"):
        mail_in(desk, subject)
    mail_in(desk, "Ops thing", sender="Dave <dave@other.test>", to="ops@example.test")
    mail_in(desk, "Refund", to="billing@example.test")  # resolutions there need review
    for n in range(1, 6):
        wait_ticket(desk.settings, n)
    alice = desk.sign_in("alice")
    page = alice.get("/desk/queue/unassigned")
    drawn = versions(page)
    assert sorted(drawn) == [1, 2, 3, 5]
    # HD-3 changes after alice's page was drawn (lisa assigns it from the shell)
    assert invoke_cli(desk.settings, "tickets", "assign", "3", "lisa", "--as", "lisa") \
        .exit_code == 0
    form = {"csrf_token": token(page), "action": "assign", "assignee": "bob",
            "back": "/desk/queue/unassigned", "ticket": ["1", "2", "3"],
            **{f"version-{i}": v for i, v in drawn.items()}}
    answer = alice.post("/desk/bulk", data=form)
    assert answer.status_code == 409, answer.text
    results = dict(re.findall(r'>HD-(\d+)</a></th>\s*<td>([a-z ]+)</td>', answer.text))
    assert results == {"1": "applied", "2": "applied", "3": "stale"}
    assert "lisa" in answer.text  # the fresh state of the stale one
    for n in (1, 2):
        assert events(desk.settings, n, "assignee") == [("alice", "bob")]
    assert events(desk.settings, 3, "assignee") == [("lisa", "lisa")]
    wait_mails_to(relay, "bob@staff.test", 2)  # each assignment told, as by mail

    # close HD-1 and HD-5 with their fresh versions; HD-4 is another team's: not found,
    # untouched; HD-5's resolution waits for the lead, as by mail
    page = alice.get("/desk/queue/all")
    fresh = versions(page)
    answer = alice.post("/desk/bulk", data={
        "csrf_token": token(page), "action": "close", "ticket": ["1", "4", "5"],
        "version-1": fresh[1], "version-4": "0.0", "version-5": fresh[5]})
    assert answer.status_code == 200, answer.text
    results = dict(re.findall(r'>HD-(\d+)</a></th>\s*<td>([a-z ]+)</td>', answer.text))
    assert results == {"1": "applied", "4": "not found", "5": "applied"}
    assert "waits for lisa" in answer.text
    assert events(desk.settings, 1, "status")[-1] == ("alice", "resolved")
    assert ticket(desk.settings, 4)["status"] == "new"
    held = alice.get("/desk/queue/review")
    assert rows(held) == [5] and count(held, "Held for review") == 1
    assert [e["actor"] for e in ticket(desk.settings, 5)["events"]
            if e["kind"] == "review-requested"] == ["alice"]
    # no CSRF token: refused before anything runs
    refused = alice.post("/desk/bulk", data={"action": "close", "ticket": ["2"],
                                             "version-2": fresh[2]})
    assert refused.status_code == 403 and ticket(desk.settings, 2)["status"] != "resolved"


def test_versions_of_a_page_match_the_single_ticket_version(
        make_desk: Callable[..., Desk]) -> None:
    """The bulk form's versions (read for a page at once) are exactly what the POST
    compares against (read per ticket)."""
    desk = make_desk()
    mail_in(desk, "One")
    mail_in(desk, "Two")
    wait_ticket(desk.settings, 2)
    with db.session_scope(engine_for(desk.settings)) as s:
        many = row_facts.row_facts(s, [1, 2, 3]).versions
        assert many == {i: queries.ticket_version(s, i) for i in (1, 2, 3)}


def _next_response_tickets(settings: Settings) -> None:
    """HD-1 and HD-2 both breach their next response at 09:00; HD-2 is answered at 11:00,
    HD-1 never is."""
    for subject in ("never answered", "answered late"):
        make_ticket(settings, NOW - timedelta(hours=5), priority="normal", assignee="",
                    subject=subject)
    for n in (1, 2):
        agent_reply(settings, n, NOW - timedelta(hours=4, minutes=30))
        customer_reply(settings, n, NOW - timedelta(hours=4))
    run_pass(settings, NOW - timedelta(hours=2))
    agent_reply(settings, 2, NOW - timedelta(hours=1))
    run_pass(settings, NOW)
    clock.freeze(NOW)


@SQLITE_ONLY
def test_a_next_response_breach_is_overdue_until_that_ticket_is_answered(
        make_desk: Callable[..., Desk]) -> None:
    policy = {"first_response": "8h", "resolution": "3d", "next_response": "1h"}
    # the breach raised both to high
    desk = make_desk(_next_response_tickets, sla={"normal": policy, "high": policy})
    assert [k for k in step_keys(desk.settings, 2) if k.endswith("breach")]
    lisa = desk.sign_in("lisa")
    page = lisa.get("/desk/queue/overdue")
    # another ticket's later answer does not answer this one
    assert rows(page) == [1] and count(page, "Overdue SLA") == 1
    assert "next response overdue by 3h 0m" in page.text
