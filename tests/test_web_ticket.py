"""The desk's ticket page against the real daemon on loopback: mail arrives by SMTP,
agents act by mail, the page (over HTTP, signed in by a login link) shows the
conversation in order with notes and automatic replies marked, attachments as
downloads, the threading trace and the history; hostile mail shows nothing
unescaped, its HTML only sanitised under a strict CSP; wrong or forbidden numbers
are a 404 page."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlalchemy import event

from helpdesk.config.settings import Settings
from helpdesk.store import queries
from helpdesk.store.db import session_scope
from tests import agent_mails
from tests.agent_desk import AGENTS, reply_to, wait_mails_to
from tests.helpers import (
    DaemonThread,
    RelaySink,
    engine_for,
    invoke_cli,
    send,
    wait_ticket,
    wait_until,
)

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
# the action forms' script (templates/web/ticket_actions.html.j2), the page's only one
OUR_SCRIPT = '<script src="/desk/static/ticket_actions.js" defer></script>'
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# dora works the sales team only: support's tickets are not hers
DESK_AGENTS = AGENTS + """
[[agent]]
name = "dora"
email = "dora@staff.test"
teams = ["sales"]
"""
PDF = b"%PDF-1.4\n% a small report\n%%EOF\n"
SVG = (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert("svg")</script>'
       b'<circle r="5"/></svg>')
HOSTILE_HTML = """<html><head><style>body { background: url(http://evil.test/css.png) }</style>
<script>alert("body")</script></head><body>
<p onclick="alert('click')">Please <a href="javascript:alert('link')">click here</a>
or <a href="https://help.example.org/page">read this</a>.</p>
<img src="http://evil.test/pixel.png" onerror="alert('img')" alt="tracker">
<span style="color: red; background-image: url(http://evil.test/span.png)">red</span>
<form action="http://evil.test/"><input name="password"></form>
<meta http-equiv="refresh" content="0;url=http://evil.test/"><base href="http://evil.test/">
<link rel="stylesheet" href="http://evil.test/x.css"><iframe src="http://evil.test/"></iframe>
<svg onload="alert('svg')"><image href="http://evil.test/i.png"/></svg>
<a href="data:text/html;base64,PHNjcmlwdD4=">data link</a><img src="cid:part1@evil.test">
<img srcset="http://evil.test/s.png 2x" src="https://images.example.org/ok.png" alt="ok">
</body></html>"""


@pytest.fixture
def desk_overrides() -> dict[str, Any]:
    return {"web": {"enabled": True}, "agents": DESK_AGENTS}


@pytest.fixture
def browsers() -> Iterator[list[httpx.Client]]:
    made: list[httpx.Client] = []
    yield made
    for client in made:
        client.close()


def sign_in(settings: Settings, daemon: DaemonThread, browsers: list[httpx.Client],
            name: str) -> httpx.Client:
    """A browser signed in as agent `name` with a CLI login link."""
    url = f"http://127.0.0.1:{daemon.daemon.public.port}"  # type: ignore[union-attr]
    result = invoke_cli(settings, "web", "login-link", name)
    assert result.exit_code == 0, result.output
    link = result.stdout.splitlines()[0].replace("http://127.0.0.1:0", url)
    browser = httpx.Client(base_url=url, timeout=15)
    browsers.append(browser)
    page = browser.get(link)
    assert page.status_code == 200, (link, page.status_code, page.text)
    answer = browser.post("/desk/login/confirm", data={
        "t": parse_qs(urlparse(link).query)["t"][0], "csrf_token": CSRF.search(page.text)[1]})
    assert answer.status_code == 303, answer.text
    return browser


@pytest.fixture
def signed_in(desk: tuple[Settings, DaemonThread],
              browsers: list[httpx.Client]) -> Callable[[str], httpx.Client]:
    """signed_in(name): a browser signed in to `desk` as that agent."""
    return lambda name: sign_in(*desk, browsers, name)


def customer_mail(*, subject: str = "Printer on fire",
                  sender: str = "Carol Customer <carol@customer.test>",
                  text: str = "Help, the printer is on fire.", html: str = "",
                  attachments: tuple[tuple[str, str, bytes], ...] = ()) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "support@example.test", subject
    msg["Message-ID"] = make_msgid(domain="customer.test")
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    for name, ctype, data in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


def attachment_links(page: str) -> dict[str, str]:
    """Attachment name as shown -> its download path."""
    found = re.findall(r'href="(/desk/ticket/\d+/attachment/\d+)" download>([^<]*)<', page)
    return {name: href for href, name in found}


def formatted_link(page: str, number: int) -> str:
    found = re.search(rf'href="/desk/ticket/{number}\?formatted=(\d+)#m\d+"', page)
    assert found, page
    return f"/desk/ticket/{number}/message/{found[1]}/html"


def section(page: str, name: str) -> str:
    start = page.index(f'<h2 id="{name}">')
    end = page.find("<h2 ", start + 1)
    return page[start:end if end > 0 else len(page)]


def test_the_page_shows_the_conversation_notes_attachments_trace_and_history(
        desk: tuple[Settings, DaemonThread], relay: RelaySink,
        signed_in: Callable[[str], httpx.Client]) -> None:
    settings, daemon = desk
    send(daemon.port, customer_mail(
        text="Help, the printer is on fire.\nSee the report.",
        html="<p>Help, the printer is <b>on fire</b>.</p>",
        attachments=(("report.pdf", "application/pdf", PDF),
                     ("drawing.svg", "image/svg+xml", SVG))))
    notification = wait_mails_to(relay, "alice@staff.test", 1)[0]
    wait_mails_to(relay, "carol@customer.test", 1)  # the acknowledgement

    def alice(typed: str) -> None:
        raw = agent_mails.gmail(typed=typed, sender="Alice <alice@staff.test>",
                                to=reply_to(notification), original=notification)
        send(daemon.port, raw, sender="alice@staff.test", rcpts=[reply_to(notification)])

    alice("#note\nThe customer seems upset, handle with care.")
    wait_ticket(settings, 1, lambda t: len(t["messages"]) == 2, "the note")
    alice("Hello Carol, we are on it.")
    wait_mails_to(relay, "carol@customer.test", 2)
    # carol's out-of-office answering our reply: kept, folded away
    out_of_office = customer_mail(subject="Re: [HD-1] Printer on fire",
                                  text="I am out of the office until Monday.")
    out_of_office["Auto-Submitted"] = "auto-replied"
    send(daemon.port, out_of_office)
    wait_ticket(settings, 1, lambda t: len(t["messages"]) == 5, "all messages")

    alice_browser = signed_in("alice")
    answer = alice_browser.get("/desk/ticket/1")
    assert answer.status_code == 200, answer.text
    assert "frame-src 'self'" in answer.headers["content-security-policy"]
    # the only script is the desk's own (the action forms'), from our origin
    assert "script-src 'self';" in answer.headers["content-security-policy"] + ";"
    assert "unsafe" not in answer.headers["content-security-policy"]
    page = answer.text
    assert "HD-1" in page and "Printer on fire" in page
    assert "Carol Customer &lt;carol@customer.test&gt;" in page
    # in order: the customer's mail, alice's note, her reply, the acknowledgement-era mails
    conversation = section(page, "conversation")
    first = conversation.index("Help, the printer is on fire.")
    note = conversation.index("The customer seems upset")
    reply = conversation.index("Hello Carol, we are on it.",
                               conversation.index('class="message reply"'))
    automatic = conversation.index("I am out of the office")
    assert first < note < reply < automatic
    # the note is marked internal and looks different; the automatic reply is folded
    note_article = conversation[conversation.rindex("<article", 0, note):note]
    assert 'class="message note internal"' in note_article
    assert "Internal note" in note_article and "agents only" in note_article
    reply_article = conversation[conversation.rindex("<article", 0, reply):reply]
    assert 'class="message reply"' in reply_article and "Reply to the customer by alice" \
        in reply_article
    auto_article = conversation[conversation.rindex("<article", 0, automatic):automatic]
    assert "<details>" in auto_article and "automatic reply" in auto_article
    # threading trace and history
    trace = section(page, "threading")
    assert "agent reply address" in trace or "In-Reply-To a notification" in trace
    assert "reply by alice" in trace and "smtp" in trace
    history = section(page, "history")
    assert "created" in history and "carol@customer.test" in history
    assert re.search(r"alice</td>\s*<td>note", history), history
    assert "auto-reply" in history
    # the SLA (none configured here) and the fields
    assert "No SLA applies" in page and "support" in section(page, "fields")

    # attachments: downloads only, safe types, nosniff
    links = attachment_links(page)
    assert set(links) == {"report.pdf", "drawing.svg"}
    pdf = alice_browser.get(links["report.pdf"])
    assert pdf.status_code == 200 and pdf.content == PDF
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("attachment;")
    assert "report.pdf" in pdf.headers["content-disposition"]
    assert pdf.headers["x-content-type-options"] == "nosniff"
    svg = alice_browser.get(links["drawing.svg"])
    assert svg.status_code == 200 and svg.content == SVG
    assert svg.headers["content-type"] == "application/octet-stream"
    assert svg.headers["content-disposition"].startswith("attachment;")
    assert svg.headers["x-content-type-options"] == "nosniff"

    # "show formatted": the page frames the HTML view in a sandbox
    html_url = formatted_link(page, 1)
    message_id = html_url.split("/")[-2]
    formatted = alice_browser.get(f"/desk/ticket/1?formatted={message_id}").text
    frame = re.search(r"<iframe[^>]*>", formatted)
    assert frame, formatted
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in frame[0]
    assert f'src="{html_url}"' in frame[0]
    shown = alice_browser.get(html_url)
    assert shown.status_code == 200 and "<b>on fire</b>" in shown.text

    # an attachment or message of another ticket is not reachable through this one
    send(daemon.port, customer_mail(subject="Second", attachments=(
        ("other.pdf", "application/pdf", PDF),), html="<p>second</p>"))
    wait_ticket(settings, 2, lambda t: True, "a second ticket")
    second = alice_browser.get("/desk/ticket/2").text
    other = attachment_links(second)["other.pdf"]
    assert alice_browser.get(other).status_code == 200
    assert alice_browser.get(other.replace("/ticket/2/", "/ticket/1/")).status_code == 404
    other_html = formatted_link(second, 2)
    assert alice_browser.get(other_html.replace("/ticket/2/", "/ticket/1/")).status_code == 404


@SQLITE_ONLY
def test_hostile_mail_shows_nothing_unescaped_and_its_html_only_sanitised(
        desk: tuple[Settings, DaemonThread], relay: RelaySink,
        signed_in: Callable[[str], httpx.Client]) -> None:
    settings, daemon = desk
    send(daemon.port, customer_mail(
        subject='<script>alert("subject")</script> urgent',
        sender='"<script>alert(\'name\')</script>" <mallory@customer.test>',
        text="Plain text <script>alert('text')</script>", html=HOSTILE_HTML,
        attachments=(('<img src=x onerror=alert(1)>.svg', "image/svg+xml", SVG),
                     ("page.html", "text/html", b"<script>alert('html')</script>"))))
    wait_ticket(settings, 1, lambda t: True, "the hostile ticket")
    browser = signed_in("alice")
    page = browser.get("/desk/ticket/1")
    assert page.status_code == 200
    # the one script tag is the action forms' own file (web/actions.py)
    text = page.text.lower().replace(OUR_SCRIPT, "", 1)
    assert "<script" not in text and "<img" not in text and "<svg" not in text
    assert not re.search(r"<[^>]*\son\w+=", text)  # no event handler in any tag
    assert "&lt;img src=x onerror=alert(1)&gt;.svg" in page.text  # the name, as text
    assert "&lt;script&gt;alert(&#34;subject&#34;)&lt;/script&gt;" in page.text
    assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in page.text
    assert 'href="javascript:' not in text

    # the HTML view: sanitised, under its own strict CSP
    html_url = formatted_link(page.text, 1)
    view = browser.get(html_url)
    assert view.status_code == 200
    csp = view.headers["content-security-policy"]
    assert csp.startswith("default-src 'none'; img-src data:; style-src 'unsafe-inline';")
    assert "sandbox" in csp and "script-src" not in csp
    assert view.headers["x-content-type-options"] == "nosniff"
    body = view.text.lower()
    for bad in ("<script", "alert(", "javascript:", "onerror", "onclick", "onload",
                "evil.test", "url(", "<form", "<input", "<meta http", "<base", "<link",
                "<iframe", "<svg", "data:text", "images.example.org"):
        assert bad not in body, bad
    assert 'href="https://help.example.org/page"' in view.text
    assert 'target="_blank"' in view.text and "noopener" in view.text
    assert "data:image/svg+xml" in view.text and 'alt="tracker"' in view.text  # placeholder
    assert "color:red" in view.text.replace(" ", "")
    # "load images": https images may load; this mail's http one still does not
    loaded = browser.get(html_url + "?images=1")
    assert "img-src data: https:;" in loaded.headers["content-security-policy"]
    assert "evil.test" not in loaded.text and "srcset" not in loaded.text
    assert 'src="https://images.example.org/ok.png"' in loaded.text
    framed = browser.get(f"/desk/ticket/1?formatted={html_url.split('/')[-2]}")
    assert "load images" in framed.text
    assert "?images=1" in browser.get(
        f"/desk/ticket/1?formatted={html_url.split('/')[-2]}&images=1").text

    # attachments: an SVG or HTML file is a download of bytes, never a page
    links = attachment_links(page.text)
    assert len(links) == 2
    for href in links.values():
        got = browser.get(href)
        assert got.status_code == 200
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.headers["content-disposition"].startswith("attachment;")
        assert got.headers["x-content-type-options"] == "nosniff"
        assert "<" not in got.headers["content-disposition"]
    names = " ".join(browser.get(h).headers["content-disposition"] for h in links.values())
    assert "filename*=utf-8''" in names  # the hostile name, percent-encoded


def test_unknown_and_forbidden_tickets_are_the_same_404_page(
        desk: tuple[Settings, DaemonThread], relay: RelaySink,
        signed_in: Callable[[str], httpx.Client]) -> None:
    settings, daemon = desk
    send(daemon.port, customer_mail(html="<p>formatted</p>", attachments=(
        ("report.pdf", "application/pdf", PDF),)))
    wait_ticket(settings, 1, lambda t: True, "a support ticket")
    alice = signed_in("alice")
    page = alice.get("/desk/ticket/1").text
    attachment = next(iter(attachment_links(page).values()))
    html_url = formatted_link(page, 1)
    for path in ("/desk/ticket/99", "/desk/ticket/0", "/desk/ticket/99999999999999999999",
                 "/desk/ticket/1/attachment/99", "/desk/ticket/1/message/99/html",
                 "/desk/ticket/abc"):
        missing = alice.get(path)
        assert missing.status_code == 404, path
        assert "Not found" in missing.text
    # dora works another team: support's ticket is not there for her, nor its files
    dora = signed_in("dora")
    for path in ("/desk/ticket/1", attachment, html_url):
        refused = dora.get(path)
        assert refused.status_code == 404, path
        assert "report.pdf" not in refused.text and "Printer" not in refused.text
    # a lead sees every queue
    assert signed_in("lisa").get("/desk/ticket/1").status_code == 200
    # not signed in: to the sign-in page, nothing shown
    anonymous = httpx.get(f"http://127.0.0.1:{daemon.daemon.public.port}"  # type: ignore[union-attr]
                          "/desk/ticket/1", timeout=15)
    assert anonymous.status_code == 303 and "/desk/login" in anonymous.headers["location"]


def test_a_note_committed_while_the_page_is_read_is_not_half_shown(
        desk: tuple[Settings, DaemonThread], relay: RelaySink,
        signed_in: Callable[[str], httpx.Client]) -> None:
    """The page reads the ticket, its history and its messages at one moment: a note
    committed between two of its queries (here: as the history is read) shows on the
    next load, not as a message without its event in this one."""
    settings, daemon = desk
    send(daemon.port, customer_mail())
    wait_ticket(settings, 1, lambda t: True, "a support ticket")
    alice = signed_in("alice")
    written: list[int] = []

    def note_while_the_history_is_read(_conn: Any, _cursor: Any, statement: str,
                                       *_args: Any) -> None:
        if not written and "FROM event" in statement and "event.ticket_id" in statement:
            result = invoke_cli(settings, "tickets", "note", "HD-1", "--as", "bob",
                                "-m", "Written mid-read xyzzy")
            written.append(result.exit_code)

    engine = daemon.daemon.engine
    event.listen(engine, "before_cursor_execute", note_while_the_history_is_read)
    try:
        page = alice.get("/desk/ticket/1")
    finally:
        event.remove(engine, "before_cursor_execute", note_while_the_history_is_read)
    assert written == [0]
    assert page.status_code == 200
    assert "xyzzy" not in page.text
    assert "xyzzy" in alice.get("/desk/ticket/1").text


@SQLITE_ONLY
def test_the_action_forms_get_what_they_need_where_the_controls_go(
        desk_settings: Callable[..., Settings], start_daemon: Callable[..., DaemonThread],
        browsers: list[httpx.Client], tmp_path: Path) -> None:
    """The action forms are another module's template, included by name: a site template
    of that name (searched before the shipped ones) shows the context it is given."""
    site = tmp_path / "site-templates"
    (site / "web").mkdir(parents=True)
    (site / "web" / "ticket_actions.html.j2").write_text(
        "<p id=actions-context>{{ ticket.id }}|{{ version }}|{{ csrf_token | length > 20 }}|"
        "{{ agents | map(attribute='name') | join(',') }}|{{ statuses | join(',') }}|"
        "{{ priorities | join(',') }}|{{ queues | join(',') }}</p>")
    settings = desk_settings(agents=DESK_AGENTS, web={"enabled": True},
                             paths={"templates": str(site)})
    daemon = start_daemon(settings)
    send(daemon.port, customer_mail())
    wait_ticket(settings, 1, lambda t: True, "a ticket")
    page = sign_in(settings, daemon, browsers, "alice").get("/desk/ticket/1").text
    shown = re.search(r"<p id=actions-context>(.*?)</p>", page)
    assert shown, page
    with session_scope(engine_for(settings)) as session:
        version = queries.ticket_version(session, 1)
    assert shown[1].split("|") == [
        "1", version, "True", "alice,bob,lisa,dora", "open,pending,resolved,closed",
        "low,normal,high,critical", "billing,support"]
    # inside the actions section, before the conversation
    assert page.index("actions-context") < page.index('<h2 id="conversation">')


REVIEW_DESK = {"queue": {"support": {"team": "support", "review": True}},
               "sla": {"normal": {"first_response": "4h", "resolution": "2d"}}}


@pytest.mark.parametrize("desk", [REVIEW_DESK], indirect=True)
@SQLITE_ONLY
def test_sla_clocks_in_words_and_a_held_review(
        desk: tuple[Settings, DaemonThread], relay: RelaySink,
        signed_in: Callable[[str], httpx.Client]) -> None:
    _, daemon = desk
    send(daemon.port, customer_mail())
    notification = wait_mails_to(relay, "alice@staff.test", 1)[0]
    browser = signed_in("alice")
    fields = browser.get("/desk/ticket/1").text
    sla = section(fields, "sla")
    assert re.search(r"<th scope=\"row\">first response</th><td>due in 3 hours 5\d minutes",
                     sla), sla
    assert "<th scope=\"row\">resolution</th><td>due in 1 day 23 hours" in sla
    assert "Held for review" not in fields
    # alice resolves with a reply: held until lisa decides
    raw = agent_mails.gmail(typed="#status resolved\n\nThe fuser was replaced.",
                            sender="alice@staff.test", to=reply_to(notification),
                            original=notification)
    send(daemon.port, raw, sender="alice@staff.test", rcpts=[reply_to(notification)])
    wait_until(lambda: "Held for review" in browser.get("/desk/ticket/1").text, 15,
               what="the review on the page")
    page = browser.get("/desk/ticket/1").text
    review = section(page, "review")
    held = re.search(r'href="#m(\d+)"', review)
    assert held and "alice asked to set this ticket to <strong>resolved</strong>" in review
    article = re.search(rf'<article id="m{held[1]}" class="([^"]+)"[^>]*>(.*?)</article>',
                        page, re.S)
    assert article and article[1] == "message held internal", article
    assert "held for review" in article[2] and "The fuser was replaced." in article[2]


@SQLITE_ONLY
def test_a_follow_up_ticket_and_its_origin_link_to_each_other(
        desk: tuple[Settings, DaemonThread], relay: RelaySink,
        signed_in: Callable[[str], httpx.Client]) -> None:
    settings, daemon = desk
    send(daemon.port, customer_mail())
    notification = wait_mails_to(relay, "alice@staff.test", 1)[0]
    raw = agent_mails.gmail(typed="#status closed\n\nDone, the fire is out.",
                            sender="alice@staff.test", to=reply_to(notification),
                            original=notification)
    send(daemon.port, raw, sender="alice@staff.test", rcpts=[reply_to(notification)])
    wait_ticket(settings, 1, lambda t: t["status"] == "closed", "closed")
    # carol writes again about the closed ticket: a new ticket, linked to the old one
    send(daemon.port, customer_mail(subject="Re: [HD-1] Printer on fire", text="It is back."))
    wait_ticket(settings, 2, lambda t: t["linked"] == "HD-1", "the follow-up")
    browser = signed_in("alice")
    follow_up = section(browser.get("/desk/ticket/2").text, "fields")
    assert '<dt>Follows up</dt><dd><a href="/desk/ticket/1">HD-1</a></dd>' in follow_up
    origin = section(browser.get("/desk/ticket/1").text, "fields")
    assert '<dt>Followed up by</dt><dd><a href="/desk/ticket/2">HD-2</a></dd>' in origin
    assert '<dd class="status-closed">closed</dd>' in origin
