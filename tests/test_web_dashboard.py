"""The dashboard against the real daemon: tickets, replies, SLA breaches and ratings at
known moments, one more ticket by SMTP, the page read over HTTP by a lead. Its figures
are `helpdesk stats --json`'s for the same window (both parsed), over 7, 30 and 90 days;
its charts are well-formed SVG with the labels escaped; only leads and admins see it."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from helpdesk import clock
from helpdesk.store import db
from helpdesk.store.models import Survey, Ticket
from helpdesk.web import svg
from tests.conftest import MakeSettings
from tests.helpers import DaemonThread, cli_json, engine_for, make_mail, send, wait_ticket
from tests.sched import agent_reply, make_ticket, run_pass, set_status, with_agents
from tests.test_web_auth import Desk, sign_in

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
HOSTILE_QUEUE = "<script>alert(1)</script>&\"q\x0b"
SVG = re.compile(r"<svg\b.*?</svg>", re.S)


@pytest.fixture
def desk(make_settings: MakeSettings,
         start_daemon: Callable[..., DaemonThread]) -> Iterator[Desk]:
    """Three tickets of five days ago (answered in 30 min, 1 h, 2 h; two resolved, in
    2 h and 4 h, and rated 5 and 2), a critical one in a queue with a hostile name
    that breached its first-response SLA, one of sixty days ago that breached too (in
    the 90-day window only), and a new one by SMTP."""
    # the scheduler's passes are run here, at chosen moments; the daemon's would race
    settings = with_agents(make_settings({"web": {"enabled": True},
                                          "scheduler": {"enabled": False},
                                          "sla": {"critical": {"first_response": "1h"}}}))
    now = clock.now().replace(second=0, microsecond=0)
    start, old = now - timedelta(days=5), now - timedelta(days=60)
    # in the order of time: a scheduler pass takes up what changed since the last one
    make_ticket(settings, old, priority="critical", queue="billing", assignee="omar")
    run_pass(settings, old + timedelta(minutes=90))
    ids = []
    for agent, first, resolved in (("alice", 30, 120), ("omar", 60, 240), ("alice", 120, None)):
        tid = make_ticket(settings, start, priority="normal", assignee=agent)
        agent_reply(settings, tid, start + timedelta(minutes=first))
        set_status(settings, tid, "open", start + timedelta(minutes=first))
        if resolved:
            set_status(settings, tid, "resolved", start + timedelta(minutes=resolved))
        ids.append(tid)
    make_ticket(settings, start, priority="critical", queue=HOSTILE_QUEUE, assignee="")
    run_pass(settings, start + timedelta(minutes=90))
    with db.session_scope(engine_for(settings)) as s:
        for day, (tid, score) in enumerate(((ids[0], 5), (ids[1], 2)), 1):
            t = s.get(Ticket, tid)
            s.add(Survey(ticket_id=tid, contact="carol@customer.test", agent=t.assignee,
                         queue=t.queue, sent_at=start + timedelta(days=day), score=score,
                         good=score >= 4, rated_at=start + timedelta(days=day, hours=1),
                         rated_via="web"))
    clock.set_source(None)  # the daemon runs on the wall clock
    desk = Desk(settings, start_daemon(settings))
    send(desk.daemon.port, make_mail(subject="New one", body="The printer again."))
    wait_ticket(settings, 6)
    yield desk
    for client in desk.clients:
        client.close()


@dataclass
class Table:
    caption: str = ""
    rows: dict[str, list[str]] = field(default_factory=dict)  # row heading -> <data> values


class Tables(HTMLParser):
    """The page's tables: per caption, each row's heading and its <data value>s."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[Table] = []
        self.ids: dict[str, Table] = {}
        self._in: str = ""
        self._heading: str | None = None
        self._values: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.tables.append(Table())
            if a.get("id"):
                self.ids[str(a["id"])] = self.tables[-1]
        elif tag in ("caption", "th") and self.tables:
            self._in = tag
            if tag == "th":
                self._heading = ""
        elif tag == "tr":
            self._heading, self._values = None, []
        elif tag == "data" and self._heading is not None:
            self._values.append(a.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("caption", "th"):
            self._in = ""
        elif tag == "tr":
            if self._heading is not None and self.tables:
                self.tables[-1].rows[self._heading] = self._values
            self._heading, self._values = None, []

    def handle_data(self, data: str) -> None:
        if self._in == "caption":
            self.tables[-1].caption += data
        elif self._in == "th" and self._heading is not None:
            self._heading += data

    def caption(self, text: str) -> Table:
        (table,) = [t for t in self.tables if t.caption == text]
        return table


def counts(table: Table) -> dict[str, int]:
    return {k: int(v[0]) for k, v in table.rows.items() if v}


def number(text: str) -> float | None:
    return float(text) if text else None


def dashboard(browser: httpx.Client, days: int) -> tuple[httpx.Response, Tables, str]:
    page = browser.get(f"/desk/dashboard?days={days}")
    assert page.status_code == 200, page.text
    since = re.search(r'<time id="since" datetime="([^"]+)"', page.text)
    assert since
    return page, Tables(page.text), since[1]


def assert_same_figures(page: httpx.Response, tables: Tables, stats: dict[str, Any]) -> None:
    backlog = stats["backlog"]
    assert f'<data id="backlog-total" value="{backlog["total"]}">' in page.text
    for key, caption in (("by_queue", "queue"), ("by_age", "age"), ("by_status", "status"),
                         ("by_priority", "priority")):
        shown = counts(tables.caption(f"Open tickets by {caption}"))
        assert {k: v for k, v in shown.items() if v} == backlog[key], key
    for key in ("first_response", "resolution"):
        count, median, p90 = tables.ids["times"].rows[
            "First response" if key == "first_response" else "Resolution"]
        assert (int(count), number(median), number(p90)) == (
            stats[key]["count"], stats[key]["median_s"], stats[key]["p90_s"]), key
    breaches = stats["sla_breaches"]
    assert f'<data id="breaches-total" value="{breaches["total"]}">' in page.text
    assert counts(tables.caption("SLA breaches by clock")) == breaches["by_sla"]
    assert counts(tables.caption("SLA breaches by queue")) == breaches["by_queue"]
    assert sum(counts(tables.ids["breaches-over-time"]).values()) == breaches["total"]
    sat = stats["satisfaction"]
    shown = re.search(r'<p id="csat"><data value="([^"]*)">.*?<data value="([^"]*)">.*?'
                      r'<data value="([^"]*)">', page.text, re.S)
    assert shown and (int(shown[1]), number(shown[2]), number(shown[3])) == (
        sat["count"], sat["good_share"], sat["mean"])
    assert sum(counts(tables.ids["csat-over-time"]).values()) == sat["count"]
    agents = {name: [number(v) for v in values]
              for name, values in tables.ids["agents"].rows.items() if values}
    assert agents == {name: [a["open"], a["resolved"], a["first_response"]["median_s"],
                             a["sla_breaches"], a["satisfaction"]["count"]]
                      for name, a in stats["agents"].items()}


def test_the_dashboard_shows_the_figures_of_helpdesk_stats(desk: Desk) -> None:
    lisa = sign_in(desk, "lisa")
    for days in (30, 7, 90):
        page, tables, since = dashboard(lisa, days)
        stats = cli_json(desk.settings, "stats", "--since", since)
        assert stats["since"] == since
        assert_same_figures(page, tables, stats)
        # the fixture's figures, so that the comparison above compared something
        assert stats["backlog"]["total"] == 4
        assert stats["sla_breaches"]["total"] == 1 + (days >= 60)
        assert stats["first_response"] == {"count": 3, "median_s": 3600.0, "p90_s": 7200.0}
        assert stats["satisfaction"] == {"count": 2, "good_share": 0.5, "mean": 3.5}
    page, _, _ = dashboard(lisa, 30)
    assert '<a href="/desk/dashboard?days=7">' in page.text
    assert '<strong aria-current="page">30 days</strong>' in page.text


def test_the_charts_are_well_formed_svg_with_escaped_labels(desk: Desk) -> None:
    lisa = sign_in(desk, "lisa")
    page, tables, _ = dashboard(lisa, 30)
    charts = SVG.findall(page.text)
    assert len(charts) == 7
    labels = []
    for chart in charts:
        root = ET.fromstring(chart)  # raises if not well-formed
        assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("role") == "img"
        assert root.find("{http://www.w3.org/2000/svg}title") is not None
        labels += [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert svg._short(HOSTILE_QUEUE) in labels  # the queue's name, as text
    assert "<script>" not in page.text and "&lt;script&gt;alert(1)" in page.text
    assert counts(tables.caption("Open tickets by queue"))[HOSTILE_QUEUE] == 1


def test_only_leads_and_admins_see_the_dashboard(desk: Desk) -> None:
    alice, lisa = sign_in(desk, "alice"), sign_in(desk, "lisa")
    assert alice.get("/desk/dashboard").status_code == 403
    assert 'href="/desk/dashboard"' not in alice.get("/desk/").text
    assert 'href="/desk/dashboard"' in lisa.get("/desk/").text
    anonymous = desk.browser().get("/desk/dashboard")
    assert anonymous.status_code == 303 and "/desk/login" in anonymous.headers["location"]
    for days in ("abc", "-1", "100000", "<script>"):  # anything else: the 7 days
        page = lisa.get("/desk/dashboard", params={"days": days})
        assert page.status_code == 200 and 'aria-current="page">7 days' in page.text
