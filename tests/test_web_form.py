"""The public "new request" form (/portal/new, web/portal/form.py) against the real
daemon on loopback: a request goes through the spool and the pipeline as the visitor's
mail (channel `web`, rules reading `channel` and `reporter_priority`, the category
chosen); an unknown address gets a confirmation mail instead of the acknowledgement
and the ticket is held (flagged, no SLA clock, no agent told) until the link's page is
POSTed; the same form posted twice is one ticket; matching KB articles are offered
first ("solved" makes no ticket and counts a deflection); CSRF, honeypot, rate limits
and bad input get a sentence on the form with the text kept, never a 500."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from helpdesk.kb import articles as kb_articles
from helpdesk.schedule import sla
from helpdesk.store.kb_models import KbArticle
from helpdesk.store.models import Event, Ticket
from helpdesk.store.web_models import WebAttempt
from tests.helpers import (
    DaemonThread,
    engine_for,
    free_port,
    make_mail,
    spool_entries,
    wait_drained,
    wait_ticket,
    wait_until,
)
from tests.kb_helpers import sign_in
from tests.web_helpers import CSRF, Desk

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

DORA = "dora@visitor.test"
CONFIRM_LINK = re.compile(r"(http://\S+/portal/confirm/[A-Za-z0-9_.-]+)")
STATUS_LINK = re.compile(r"(http://\S+/portal/ticket/[A-Za-z0-9_.-]+)")
FORM = re.compile(r'name="form" value="([^"]+)"')
RULES = """
[[rule]]
name = "Web critical"
when.channel = { equals = "web" }
when.reporter_priority = { equals = "critical" }
set = { priority = "high" }
tags = ["from-web"]
"""


def form_desk(make_desk: Callable[..., Desk], tmp_path: Path, **config: Any) -> Desk:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "rules.toml").write_text(RULES)
    web_form = {"enabled": True, "categories": ["Printing", "Billing"],
                **config.pop("web_form", {})}
    return make_desk(http={"listen": "127.0.0.1:0", "public": f"127.0.0.1:{free_port()}"},
                     portal={"enabled": True}, web_form=web_form,
                     sla={"normal": {"first_response": "4h"}, "high": {"first_response": "1h"}},
                     **config)


def fields(**given: str) -> dict[str, str]:
    return {"name": "Dora Visitor", "address": DORA, "subject": "Scanner jams",
            "text": "The scanner jams on every second page.", "category": "Printing",
            "priority": "critical", **given}


def post_form(client: httpx.Client, page: httpx.Response, data: dict[str, str],
              files: Any = None) -> httpx.Response:
    """Submit the form of `page` as a browser does (multipart, with its hidden fields)."""
    hidden = {"csrf_token": CSRF.search(page.text)[1],  # type: ignore[index]
              "form": FORM.search(page.text)[1], "website": ""}  # type: ignore[index]
    return client.post("/portal/new", data={**hidden, **data},
                       files=files or {"attachments": ("", b"", "application/octet-stream")})


def text_of(msg: EmailMessage) -> str:
    return str(msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]


def link_in(desk: Desk, address: str, pattern: re.Pattern[str], subject: str = "") -> str:
    found = wait_until(lambda: desk.mails_to(address, subject), timeout=15,
                       what=f"a mail to {address}")
    match = pattern.search(text_of(found[-1]))
    assert match, text_of(found[-1])
    return "/" + match[1].split("/", 3)[3]


def row(desk: Desk, number: int = 1) -> Ticket:
    with Session(engine_for(desk.settings)) as session:
        found = session.get(Ticket, number)
        assert found is not None
        return found


def events(desk: Desk, kind: str) -> list[Event]:
    with Session(engine_for(desk.settings)) as session:
        return list(session.exec(select(Event).where(Event.kind == kind)).all())


def tickets(desk: Desk) -> list[Ticket]:
    with Session(engine_for(desk.settings)) as session:
        return list(session.exec(select(Ticket)).all())


def test_an_unknown_visitor_confirms_and_the_ticket_is_held_until_then(
        make_desk: Callable[..., Desk], tmp_path: Path) -> None:
    desk = form_desk(make_desk, tmp_path)
    client = desk.client()
    page = client.get("/portal/new")
    assert page.status_code == 200, page.text
    for label in ('for="name"', 'for="address"', 'for="subject"', 'for="text"',
                  'for="category"', 'for="attachments"', 'name="viewport"'):
        assert label in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    assert 'href="/portal/new"' in client.get("/portal/").text  # linked from the portal

    answer = post_form(client, page, fields(), files={
        "attachments": ("scan.pdf", b"%PDF-1.4 scanned page", "application/pdf")})
    assert answer.status_code == 200, answer.text
    assert "Request received" in answer.text
    wait_ticket(desk.settings, 1)
    held = row(desk)
    assert (held.channel, held.unconfirmed, held.category) == ("web", True, "Printing")
    assert held.priority == "high" and "from-web" in held.tags  # the rule read both facts
    assert sla.clocks(Session(engine_for(desk.settings)), sla.SlaContext(desk.settings),
                      held) == []
    link = link_in(desk, DORA, CONFIRM_LINK, "Please confirm")
    wait_drained(desk.settings)
    assert not [m for m in desk.mails_to(DORA, "") if "Please confirm" not in m["Subject"]]
    assert not desk.mails_to("alice@staff.test", "[HD-1]")  # nobody told yet

    alice = sign_in(desk, "alice")  # flagged in the desk while held
    assert 'class="badge unconfirmed"' in alice.get("/desk/ticket/1").text
    assert 'class="badge unconfirmed"' in alice.get("/desk/queue/unassigned").text

    shown = client.get(link)  # a link scanner's GET changes nothing
    assert shown.status_code == 200 and "Confirm my request" in shown.text
    assert row(desk).unconfirmed
    refused = client.post(link, data={"csrf_token": "forged"})
    assert refused.status_code == 403 and row(desk).unconfirmed
    done = client.post(link, data={"csrf_token": CSRF.search(shown.text)[1]})  # type: ignore[index]
    assert done.status_code == 200 and "Request confirmed" in done.text
    confirmed = row(desk)
    assert not confirmed.unconfirmed and len(events(desk, "confirmed")) == 1
    assert confirmed.confirmed_at is not None and confirmed.confirmed_at > confirmed.created_at
    started = sla.clocks(Session(engine_for(desk.settings)), sla.SlaContext(desk.settings),
                         confirmed)
    assert [c.started_at for c in started] == [confirmed.confirmed_at]  # not at creation
    assert STATUS_LINK.pattern and "/portal/ticket/" in done.text
    wait_until(lambda: desk.mails_to("alice@staff.test", "[HD-1]"), timeout=15,
               what="the team told of the confirmed ticket")
    client.post(link, data={"csrf_token": CSRF.search(shown.text)[1]})  # type: ignore[index]
    assert len(events(desk, "confirmed")) == 1
    assert 'class="badge unconfirmed"' not in alice.get("/desk/ticket/1").text
    assert client.get("/portal/confirm/nonsense").status_code == 404


def test_the_same_form_posted_twice_is_one_ticket_and_a_known_address_gets_the_ack(
        make_desk: Callable[..., Desk], tmp_path: Path) -> None:
    desk = form_desk(make_desk, tmp_path)
    desk.deliver(make_mail(sender=f"Dora <{DORA}>", subject="Earlier", body="Hello"),
                 sender=DORA)
    wait_ticket(desk.settings, 1)
    client = desk.client()
    page = client.get("/portal/new")
    files = {"attachments": ("log.txt", b"jam at page 2\n", "text/plain")}
    first = post_form(client, page, fields(priority=""), files=files)
    again = post_form(client, page, fields(priority=""), files=files)
    redrawn = post_form(client, client.get("/portal/new"), fields(priority=""), files=files)
    assert first.status_code == again.status_code == redrawn.status_code == 200
    made = wait_ticket(desk.settings, 2)
    wait_drained(desk.settings)
    assert len(tickets(desk)) == 2 and len(made["messages"]) == 1
    assert row(desk, 2).channel == "web" and not row(desk, 2).unconfirmed
    assert row(desk, 2).priority == "normal"  # no reporter priority: the rule held
    link_in(desk, DORA, STATUS_LINK, "[HD-2]")  # the usual acknowledgement


def test_bad_input_is_told_on_the_form_with_the_text_kept(
        make_desk: Callable[..., Desk], tmp_path: Path) -> None:
    desk = form_desk(make_desk, tmp_path, web_form={"max_size": 2048})
    client = desk.client()
    page = client.get("/portal/new")
    missing = post_form(client, page, fields(subject="", text="Kept words"))
    assert missing.status_code == 400
    assert "Please fill in your subject." in missing.text and "Kept words" in missing.text

    script = post_form(client, page, fields(text="Look <script>alert(1)</script> here"))
    assert script.status_code == 400 and "remove the script" in script.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in script.text
    assert "<script>alert" not in script.text

    big = post_form(client, page, fields(text="My big file"),
                    files={"attachments": ("big.bin", b"x" * 5000, "application/octet-stream")})
    assert big.status_code == 413 and "too large" in big.text and "My big file" in big.text
    huge = post_form(client, page, fields(), files={
        "attachments": ("huge.bin", b"x" * 2_000_000, "application/octet-stream")})
    assert huge.status_code == 413 and "too large" in huge.text

    boundary = "XyZ"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n"
            f"{CSRF.search(page.text)[1]}\r\n"  # type: ignore[index]
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"form\"\r\n\r\n"
            f"{FORM.search(page.text)[1]}\r\n").encode()  # type: ignore[index]
    for name, value in fields().items():
        raw = value.encode("latin-1") if name != "subject" else b"Gr\xfc\xdfe"
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                 .encode() + raw + b"\r\n")
    body += f"--{boundary}--\r\n".encode()
    latin = client.post("/portal/new", content=body, headers={
        "content-type": f"multipart/form-data; boundary={boundary}"})
    assert latin.status_code == 400 and "character set" in latin.text

    garbage = client.post("/portal/new", content=b"\xff\xfe", headers={
        "content-type": "multipart/form-data; boundary=nothing"})
    assert garbage.status_code in (400, 403)
    forged = client.post("/portal/new", data={**fields(), "csrf_token": "x"},
                         files={"attachments": ("", b"", "application/octet-stream")})
    assert forged.status_code == 403
    agent = post_form(client, page, fields(address="alice@staff.test"))
    assert agent.status_code == 400 and "our own team" in agent.text
    wait_drained(desk.settings)
    assert tickets(desk) == [] and spool_entries(desk.settings, "incoming") == []


def test_honeypot_and_rate_limits(make_desk: Callable[..., Desk], tmp_path: Path) -> None:
    desk = form_desk(make_desk, tmp_path, web_form={"per_address_per_hour": 2})
    client = desk.client()
    page = client.get("/portal/new")
    trapped = post_form(client, page, {**fields(), "website": "http://spam.test"})
    assert trapped.status_code == 200 and "Request received" in trapped.text
    for n in range(2):
        fresh = client.get("/portal/new")
        assert post_form(client, fresh, fields(subject=f"Jam {n}")).status_code == 200
    over = post_form(client, client.get("/portal/new"), fields(subject="Jam 3"))
    assert over.status_code == 429 and "many requests" in over.text and "Jam 3" in over.text
    wait_ticket(desk.settings, 2)
    wait_drained(desk.settings)
    assert len(tickets(desk)) == 2 and all(t.unconfirmed for t in tickets(desk))
    sent = [m["Subject"] for m in desk.mails_to(DORA, "")]  # unconfirmed: asked again
    assert len(sent) == 2 and all(s.startswith("Please confirm") for s in sent), sent


def test_rate_limits_are_kept_in_the_database_across_a_restart(
        make_desk: Callable[..., Desk], tmp_path: Path,
        start_daemon: Callable[..., DaemonThread]) -> None:
    """The counts are rows in the database, not a daemon's memory: a restarted daemon
    (or a second one on the same database) goes on counting; refused requests don't."""
    desk = form_desk(make_desk, tmp_path, web_form={"per_address_per_hour": 2,
                                                     "per_client_per_hour": 3})
    client = desk.client()
    for n in range(2):
        assert post_form(client, client.get("/portal/new"),
                         fields(subject=f"Jam {n}")).status_code == 200
    desk.daemon.stop()
    restarted = Desk(desk.settings, start_daemon(desk.settings))
    client = restarted.client()
    over = post_form(client, client.get("/portal/new"), fields(subject="Jam 3"))
    assert over.status_code == 429 and "Jam 3" in over.text
    other = post_form(client, client.get("/portal/new"),
                      fields(address="erin@visitor.test", subject="Erin's jam"))
    assert other.status_code == 200  # the refused one did not count for this client
    third = post_form(client, client.get("/portal/new"),
                      fields(address="finn@visitor.test", subject="Finn's jam"))
    assert third.status_code == 429  # the client's third request this hour was Erin's
    with Session(engine_for(desk.settings)) as session:
        kept = [row.key for row in session.exec(select(WebAttempt)).all()]
    assert len(kept) == 6 and not any("visitor.test" in k for k in kept)  # hashes only


def publish_article(desk: Desk) -> int:
    with Session(engine_for(desk.settings)) as session:
        article = KbArticle(created_by="lisa")
        session.add(article)
        session.flush()
        kb_articles.save(session, desk.settings, article, kb_articles.Fields(
            title="Scanner jams on every second page",
            question="The scanner jams on every second page of a document.",
            resolution="Clean the feed roller with a dry cloth.", visibility="public"))
        kb_articles.publish(session, article, lead="lisa")
        session.commit()
        return int(article.id or 0)


def deflections(desk: Desk, number: int) -> int:
    with Session(engine_for(desk.settings)) as session:
        found = session.get(KbArticle, number)
        return found.deflections if found else -1


def test_a_matching_article_is_offered_first(make_desk: Callable[..., Desk],
                                             tmp_path: Path) -> None:
    desk = form_desk(make_desk, tmp_path, kb={"enabled": True})
    number = publish_article(desk)
    client = desk.client()
    assert 'href="/portal/new"' in client.get("/kb/").text  # linked from the KB
    offered = post_form(client, client.get("/portal/new"), fields())
    assert offered.status_code == 200 and "Does one of these solve it?" in offered.text
    assert f'href="/kb/{number}"' in offered.text
    token = CSRF.search(offered.text)[1]  # type: ignore[index]
    form = FORM.search(offered.text)[1]  # type: ignore[index]
    stray = client.post("/portal/new/solved", data={"csrf_token": token, "form": form,
                                                    "article": "999"})
    assert stray.status_code == 200 and deflections(desk, number) == 0
    solved = client.post("/portal/new/solved", data={"csrf_token": token, "form": form,
                                                     "article": str(number)})
    assert solved.status_code == 200 and "Glad it helped" in solved.text
    client.post("/portal/new/solved", data={"csrf_token": token, "form": form,
                                            "article": str(number)})
    assert deflections(desk, number) == 1
    late = client.post("/portal/new/send", data={"csrf_token": token, "form": form})
    assert late.status_code == 410

    again = post_form(client, client.get("/portal/new"), fields(subject="Scanner jams again"))
    token, form = CSRF.search(again.text)[1], FORM.search(again.text)[1]  # type: ignore[index]
    sent = client.post("/portal/new/send", data={"csrf_token": token, "form": form})
    assert sent.status_code == 200 and "Request received" in sent.text
    twice = client.post("/portal/new/send", data={"csrf_token": token, "form": form})
    assert twice.status_code == 200
    wait_ticket(desk.settings, 1)
    wait_drained(desk.settings)
    assert len(tickets(desk)) == 1 and row(desk).subject == "Scanner jams again"
    assert deflections(desk, number) == 1


def test_confirm_never_and_the_form_off(make_desk: Callable[..., Desk],
                                        tmp_path: Path) -> None:
    desk = form_desk(make_desk, tmp_path, web_form={"confirm": "never"})
    client = desk.client()
    post_form(client, client.get("/portal/new"), fields())
    wait_ticket(desk.settings, 1)
    assert not row(desk).unconfirmed
    link_in(desk, DORA, STATUS_LINK, "[HD-1]")
    off = form_desk(make_desk, tmp_path, web_form={"enabled": False})
    assert off.client().get("/portal/new").status_code == 404
    assert 'href="/portal/new"' not in off.client().get("/portal/").text
