"""Signing in to the desk, against the real daemon on loopback with httpx as the browser:
magic links from the outgoing maildir (once, in time, to agents only), passwords,
CSRF on every POST, the rate limit, sessions ended here and everywhere, the CLI's
login link, and /desk/ closed to anyone who is not a signed-in agent."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlmodel import select

from helpdesk import clock
from helpdesk.config import agents
from helpdesk.store import db
from helpdesk.store.db import session_scope
from helpdesk.store.models import Outbox
from helpdesk.store.web_models import WebLoginToken, WebPassword, WebSession
from helpdesk.web import auth, sessions
from tests.conftest import MakeSettings
from tests.helpers import invoke_cli
from tests.web_helpers import CSRF, Desk, ask_for_link, follow_link, sign_in, signed_in_as, token

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def signin_rows(desk: Desk) -> int:
    with session_scope(db.make_engine(desk.settings.database_url)) as s:
        return len(s.exec(select(Outbox).where(Outbox.kind == "web-signin")).all())


# -- magic links --------------------------------------------------------------------------

def test_a_mailed_link_signs_in_once_and_only_its_hash_is_stored(
        make_desk: Callable[..., Desk]) -> None:
    desk = make_desk()
    browser = desk.browser()
    assert signed_in_as(browser) is None
    sent = ask_for_link(browser, "Alice@Staff.test")
    assert sent.status_code == 200 and "Check your mail" in sent.text
    link = desk.link_mailed_to("alice@staff.test")
    mail = desk.mails_to("alice@staff.test")[0]
    assert mail["Auto-Submitted"] == "auto-replied"
    assert link.startswith(desk.url + "/desk/login/confirm?t=")  # the port it really got
    # opening the link (as a mail scanner does) signs no one in and uses nothing up
    assert browser.get(link).status_code == 200
    assert signed_in_as(browser) is None
    answer = follow_link(browser, link)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert "Path=/desk" in cookie and "Secure" not in cookie  # http: public_url not https
    assert signed_in_as(browser) == "alice"
    # second use: refused, from any browser
    other = desk.browser()
    assert other.get(link).status_code == 410
    page = other.get("/desk/login")
    again = other.post("/desk/login/confirm", data={
        "t": parse_qs(urlparse(link).query)["t"][0], "csrf_token": token(page)})
    assert again.status_code == 410 and signed_in_as(other) is None
    # the database has a hash of the link's token, never the token itself
    raw = parse_qs(urlparse(link).query)["t"][0]
    with session_scope(db.make_engine(desk.settings.database_url)) as s:
        rows = s.exec(select(WebLoginToken)).all()
        assert [r.key for r in rows] == [sessions.digest(raw)]
        assert rows[0].used_at is not None
        assert all(raw not in r.key for r in s.exec(select(WebSession)).all())


@sqlite_only
def test_an_alternate_address_gets_the_link_at_the_address_on_file(
        make_desk: Callable[..., Desk]) -> None:
    desk = make_desk()
    browser = desk.browser()
    assert ask_for_link(browser, "omar.k@staff.test").status_code == 200
    follow_link(browser, desk.link_mailed_to("omar@staff.test"))
    assert signed_in_as(browser) == "omar"
    assert desk.mails_to("omar.k@staff.test") == []


@sqlite_only
def test_an_expired_link_is_refused(make_desk: Callable[..., Desk]) -> None:
    desk = make_desk({"login_link_valid": "15m"})
    browser = desk.browser()
    ask_for_link(browser, "alice@staff.test")
    link = desk.link_mailed_to("alice@staff.test")
    page = browser.get(link)
    assert page.status_code == 200
    later = datetime.now(UTC) + timedelta(minutes=16)
    clock.set_source(lambda: later)
    assert browser.get(link).status_code == 410
    answer = browser.post("/desk/login/confirm", data={
        "t": parse_qs(urlparse(link).query)["t"][0], "csrf_token": token(page)})
    assert answer.status_code == 410 and "cannot be used" in answer.text
    assert signed_in_as(browser) is None


@sqlite_only
def test_an_unknown_address_gets_the_same_page_and_no_mail(
        make_desk: Callable[..., Desk]) -> None:
    desk = make_desk()
    browser = desk.browser()
    stranger = ask_for_link(browser, "carol@customer.test")
    agent = ask_for_link(browser, "alice@staff.test")
    assert stranger.status_code == agent.status_code == 200
    assert stranger.text.replace("carol@customer.test", "X") == \
        agent.text.replace("alice@staff.test", "X")
    desk.link_mailed_to("alice@staff.test")  # the outbox has run past both requests
    assert desk.mails_to("carol@customer.test") == []
    assert signin_rows(desk) == 1


# -- CSRF ---------------------------------------------------------------------------------

@sqlite_only
def test_a_post_without_the_right_csrf_token_is_refused(
        make_desk: Callable[..., Desk]) -> None:
    desk = make_desk()
    browser = desk.browser()
    right = token(browser.get("/desk/login"))
    for data in ({"address": "alice@staff.test"},
                 {"address": "alice@staff.test", "csrf_token": "forged"},
                 {"address": "alice@staff.test", "csrf_token": right + "x"}):
        assert browser.post("/desk/login/link", data=data).status_code == 403
    # a token is good only with the cookie it was made for: another browser's is refused
    other = desk.browser()
    other.get("/desk/login")
    assert other.post("/desk/login/link",
                      data={"address": "alice@staff.test", "csrf_token": right}).status_code == 403
    # signed in, the token is bound to the session: sign-out without it does nothing
    alice = sign_in(desk, "alice")
    assert alice.post("/desk/logout", data={"csrf_token": right}).status_code == 403
    assert alice.post("/desk/logout/everywhere", data={}).status_code == 403
    assert signed_in_as(alice) == "alice"
    assert signin_rows(desk) == 0  # no mail was asked for with a refused form


# -- rate limit ---------------------------------------------------------------------------

def test_sign_in_attempts_are_limited_per_address_and_per_client(
        make_desk: Callable[..., Desk]) -> None:
    desk = make_desk({"signin_per_address": 3, "signin_per_client": 5})
    browser = desk.browser()
    for _ in range(3):
        assert ask_for_link(browser, "alice@staff.test").status_code == 200
    refused = ask_for_link(browser, "alice@staff.test")
    assert refused.status_code == 429 and "Too many" in refused.text
    # the address is locked for passwords too, and says so the same for a stranger
    form = token(browser.get("/desk/login"))
    assert browser.post("/desk/login/password", data={
        "login": "alice@staff.test", "password": "x" * 12, "csrf_token": form}
    ).status_code == 429
    # other addresses from this client: the client's limit (5 attempts so far) is reached
    assert ask_for_link(browser, "lisa@staff.test").status_code == 429
    desk.link_mailed_to("alice@staff.test", count=3)
    assert signin_rows(desk) == 3  # nothing mailed for refused attempts
    # the window passes
    later = datetime.now(UTC) + timedelta(minutes=16)
    clock.set_source(lambda: later)
    assert ask_for_link(browser, "lisa@staff.test").status_code == 200


# -- sessions -----------------------------------------------------------------------------

@sqlite_only
def test_sign_out_ends_one_session_and_sign_out_everywhere_ends_all(
        make_desk: Callable[..., Desk]) -> None:
    desk = make_desk()
    laptop, phone, tablet = (sign_in(desk, "alice") for _ in range(3))
    lisa = sign_in(desk, "lisa")
    kept_cookie = phone.cookies.get(sessions.COOKIE)
    # sign out on the laptop: the laptop only
    out = laptop.post("/desk/logout", data={"csrf_token": token(laptop.get("/desk/"))})
    assert out.status_code == 303 and out.headers["location"] == "/desk/login"
    assert signed_in_as(laptop) is None
    assert signed_in_as(phone) == signed_in_as(tablet) == "alice"
    # everywhere, from the phone: the tablet is signed out too (its cookie still signed)
    out = phone.post("/desk/logout/everywhere", data={"csrf_token": token(phone.get("/desk/"))})
    assert out.status_code == 303
    assert signed_in_as(tablet) is None
    replayed = desk.browser()
    replayed.cookies.set(sessions.COOKIE, kept_cookie or "", path="/desk")
    assert signed_in_as(replayed) is None
    assert signed_in_as(lisa) == "lisa"  # another agent's sessions stay


@sqlite_only
def test_a_forged_cookie_and_anonymous_visitors_do_not_reach_the_desk(
        make_desk: Callable[..., Desk]) -> None:
    desk = make_desk()
    anonymous = desk.browser()
    page = anonymous.get("/desk/")
    assert page.status_code == 303 and page.headers["location"] == "/desk/login?next=%2Fdesk%2F"
    forged = desk.browser()
    forged.cookies.set(sessions.COOKIE, "alice", path="/desk")
    assert signed_in_as(forged) is None
    assert anonymous.get("/desk/nothing-here").status_code == 404
    # a sign-in form never sends anyone to another site afterwards
    login = anonymous.get("/desk/login?next=//evil.test/")
    assert 'value="/desk/"' in login.text


@sqlite_only
def test_an_agent_removed_from_agents_toml_is_signed_out(
        make_desk: Callable[..., Desk]) -> None:
    desk = make_desk()
    omar = sign_in(desk, "omar")
    assert signed_in_as(omar) == "omar"
    path = desk.settings.source.parent / "agents.toml"  # type: ignore[union-attr]
    text = path.read_text()
    path.write_text(re.sub(r'\[\[agent\]\]\nname = "omar"\n(.+\n)+?\n', "", text)
                    .replace('lead = "omar"\n', ""))
    assert agents.load(path).agent("omar") is None
    assert desk.daemon.daemon.rules is not None
    assert desk.daemon.daemon.rules.reload() is None
    assert signed_in_as(omar) is None


def test_roles_rank_and_team_leads_are_leads(tmp_path: Path, database_url: str) -> None:
    from tests.helpers import REPO

    directory = agents.load(REPO / "config" / "agents.toml")
    roles = {a.name: auth.role_of(directory, a) for a in directory.agents}
    assert roles == {"alice": "agent", "lisa": "lead", "omar": "lead"}  # omar leads ops
    admin = agents.build({"agent": [{"name": "ada", "email": "ada@staff.test",
                                     "role": "admin"}]})
    ada = admin.agent("ada")
    assert ada is not None and auth.role_of(admin, ada) == "admin"
    who = auth.SignedIn(ada, "admin", "")
    assert who.has_role("lead") and who.has_role("agent")
    assert not auth.SignedIn(ada, "agent", "").has_role("lead")
    with pytest.raises(agents.AgentsError, match="role: 'boss' is not one of"):
        agents.build({"agent": [{"name": "b", "email": "b@staff.test", "role": "boss"}]})


# -- passwords ----------------------------------------------------------------------------

@sqlite_only
def test_password_sign_in_and_a_wrong_password_refused(
        make_desk: Callable[..., Desk]) -> None:
    desk = make_desk()
    result = invoke_cli(desk.settings, "web", "set-password", "alice",
                        stdin="correct horse battery\n")
    assert result.exit_code == 0 and "password of alice set" in result.output
    short = invoke_cli(desk.settings, "web", "set-password", "alice", stdin="short\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    with session_scope(db.make_engine(desk.settings.database_url)) as s:
        stored = s.exec(select(WebPassword)).one()
        assert stored.hash.startswith("$argon2id$") and "horse" not in stored.hash

    def attempt(login: str, password: str) -> httpx.Response:
        browser = desk.browser()
        form = token(browser.get("/desk/login"))
        answer = browser.post("/desk/login/password", data={
            "login": login, "password": password, "csrf_token": form})
        if answer.status_code == 303:
            assert signed_in_as(browser) == "alice"
        return answer

    assert attempt("alice", "correct horse battery").status_code == 303
    assert attempt("Alice@staff.test", "correct horse battery").status_code == 303
    wrong = attempt("alice", "correct horse batterY")
    assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
    # no password set, no such agent: the same answer (but for each browser's CSRF token)
    for login in ("lisa", "nobody"):
        other = attempt(login, "correct horse battery")
        assert other.status_code == 401
        assert CSRF.sub("", other.text) == CSRF.sub("", wrong.text)
    removed = invoke_cli(desk.settings, "web", "set-password", "alice", "--remove")
    assert removed.exit_code == 0
    assert attempt("alice", "correct horse battery").status_code == 401


# -- CLI ----------------------------------------------------------------------------------

@sqlite_only
def test_login_link_from_the_command_line(make_desk: Callable[..., Desk]) -> None:
    desk = make_desk()
    browser = sign_in(desk, "lisa")  # through `helpdesk web login-link lisa`
    page = browser.get("/desk/")
    assert "(lisa, lead)" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    unknown = invoke_cli(desk.settings, "web", "login-link", "carol")
    assert unknown.exit_code == 1 and "no agent named 'carol'" in unknown.output
    ended = invoke_cli(desk.settings, "web", "logout-everywhere", "lisa")
    assert ended.exit_code == 0 and "1 session of lisa ended" in ended.output
    assert signed_in_as(browser) is None


@sqlite_only
def test_without_a_configured_secret_one_is_generated_private_to_the_daemon(
        make_settings: MakeSettings) -> None:
    settings = make_settings({"helpdesk": {"secret": ""}})
    first = settings.secret
    path = settings.data_dir / "secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 64 and settings.secret == first


def test_the_migration_builds_the_tables_the_models_describe(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    db.upgrade(url)
    with db.make_engine(url).connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert [d for d in differences if "web_" in repr(d)] == []
