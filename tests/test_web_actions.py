"""The desk's actions on a ticket (helpdesk/web/actions.py), against the real daemon on
loopback: customers' mail over SMTP, the customer's copy caught by a real relay, agents
signed in over HTTP. A reply from the desk is the mail reply an agent would send (same
headers, threading, text, attachments, stored message, history), a note stays
internal, field controls become #commands named in the history, and every POST is
checked: CSRF, the agent's teams, the registry's rules, the form's version."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.web import csrf
from tests import agent_mails
from tests.agent_desk import AGENTS, body, mails_to, msgid, reply_to, wait_mails_to
from tests.helpers import (
    DaemonThread,
    RelaySink,
    make_mail,
    outbox_rows,
    send,
    ticket,
    wait_ticket,
)

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
CAROL = "carol@customer.test"
# omar works another team's queues: the support tickets are not his to see
AGENTS_AND_OMAR = AGENTS + """
[[agent]]
name = "omar"
email = "omar@staff.test"
teams = ["ops"]
"""
Browsers = Callable[[str], httpx.Client]


@pytest.fixture
def desk_overrides() -> dict[str, Any]:
    return {"agents": AGENTS_AND_OMAR, "web": {"enabled": True}}


@pytest.fixture
def browsers(desk: tuple[Settings, DaemonThread]) -> Iterator[Browsers]:
    """browsers(name): a client signed in as that agent by a one-time link."""
    from tests.ops_helpers import signed_in_browsers  # it imports `hidden` from here

    yield from signed_in_browsers(desk)


def hidden(page: httpx.Response, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page.text)
    assert found, page.text
    return found[1]


def form_of(browser: httpx.Client, number: int) -> dict[str, str]:
    """The hidden fields every action form carries, as the page shows them now."""
    page = browser.get(f"/desk/ticket/{number}/actions")
    assert page.status_code == 200, page.text
    return {"csrf_token": hidden(page, "csrf_token"), "version": hidden(page, "version")}


def new_ticket(daemon: DaemonThread, relay: RelaySink, count: int = 1, **mail: Any
               ) -> EmailMessage:
    """A customer's mail, once the ticket is made (its acknowledgement went out)."""
    msg = make_mail(**mail)
    send(daemon.port, msg)
    wait_mails_to(relay, CAROL, count)
    return msg


def done(answer: httpx.Response, number: int) -> None:
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/desk/ticket/{number}"


def by(settings: Settings, number: int, actor: str) -> list[tuple[str, str, str, str, str]]:
    return [(e["kind"], e["field"], e["old"], e["new"], e["detail"])
            for e in ticket(settings, number)["events"] if e["actor"] == actor]


# -- replies ------------------------------------------------------------------------------

def _shape(msg: EmailMessage, customer: EmailMessage, number: int, subject: str
           ) -> dict[str, Any]:
    """A mail to the customer with what differs between two tickets taken out."""
    def same(value: str) -> str:
        return value.replace(f"[HD-{number}] {subject}", "[HD-n]").replace(
            f"HD-{number}", "HD-n").replace(msgid(customer), "customer")
    return {
        "headers": sorted(msg.keys()),
        **{name: same(str(msg[name])) for name in ("From", "To", "Cc", "Subject",
                                                   "In-Reply-To", "References",
                                                   "Auto-Submitted")},
        "Reply-To": re.sub(rf"\+hd-{number}-\w+@", "+hd-n@", reply_to(msg)),
        "text": same(body(msg)),
        "attachments": [(p.get_filename(), p.get_content_type(), p.get_content())
                        for p in msg.iter_attachments()],
    }


def test_a_reply_from_the_desk_is_the_mail_reply_an_agent_would_send(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    settings, daemon = desk
    dave = "Dave <dave@customer.test>"
    printer = new_ticket(daemon, relay, 1, cc=dave, body="Help, the printer is on fire.")
    scanner = new_ticket(daemon, relay, 2, cc=dave, subject="Scanner on fire",
                         body="Help, the scanner is on fire.")
    notice = next(m for m in wait_mails_to(relay, "alice@staff.test", 2)
                  if "[HD-1]" in str(m["Subject"]))
    typed = "Hi Carol,\n\nplease switch it off at the wall.\n\nBest regards\nAlice"
    steps = ("steps.txt", "text/plain", b"1. unplug\n")

    # ticket 1: alice answers by mail; ticket 2: the same text and file from the desk
    send(daemon.port, agent_mails.gmail(typed=typed, sender="alice@staff.test",
                                        to=reply_to(notice), original=notice,
                                        attachments=(steps,)),
         sender="alice@staff.test", rcpts=[reply_to(notice)])
    by_mail = wait_mails_to(relay, CAROL, 3)[2]
    alice = browsers("alice")
    done(alice.post("/desk/ticket/2/reply", data={**form_of(alice, 2), "text": typed},
                    files=[("attachments", (steps[0], steps[2], steps[1]))]), 2)
    by_web = wait_mails_to(relay, CAROL, 4)[3]

    assert by_web["In-Reply-To"] == f"<{msgid(scanner)}>"
    assert [p.get_filename() for p in by_web.iter_attachments()] == ["steps.txt"]
    assert _shape(by_web, scanner, 2, "Scanner on fire") == \
        _shape(by_mail, printer, 1, "Printer on fire")
    # the same stored reply and the same history, naming alice
    mail_t = wait_ticket(settings, 1, lambda t: t["status"] == "pending")
    web_t = wait_ticket(settings, 2, lambda t: t["status"] == "pending")
    sent = [[(m["from"], m["to"], m["cc"], m["body_text"], m["internal"],
              [(a["filename"], a["size"]) for a in m["attachments"]])
             for m in t["messages"] if m["direction"] == "out"] for t in (mail_t, web_t)]
    assert sent[0] == sent[1] and len(sent[1]) == 1 and sent[1][0][3] == typed
    assert by(settings, 1, "alice") == by(settings, 2, "alice")
    assert ("change", "status", "open", "pending", "") in by(settings, 2, "alice")
    assert mail_t["watchers"] == web_t["watchers"] == ["alice"]


@sqlite_only
def test_commands_typed_into_the_reply_box_work_as_in_a_mail_reply(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    settings, daemon = desk
    new_ticket(daemon, relay)
    bob = browsers("bob")
    # an attachment larger than a plain form may be (the reply box takes uploads)
    photo = bytes(range(256)) * 6000
    assert len(photo) > csrf.MAX_BODY
    done(bob.post("/desk/ticket/1/reply", data={
        **form_of(bob, 1), "text": "#assign me\n#priority high\n\nOn it.", "then": "close"},
        files=[("attachments", ("C:\\fakepath\\photo.jpg", photo, "image/jpeg"))]), 1)
    answer = wait_mails_to(relay, CAROL, 2)[1]
    assert "On it." in body(answer) and "#assign" not in body(answer)
    assert [(p.get_filename(), p.get_content_type(), p.get_content()) for p in
            answer.iter_attachments()] == [("photo.jpg", "image/jpeg", photo)]
    assert "resolved" in body(answer)  # "send and resolve": #close, as by mail
    t = ticket(settings, 1)
    assert (t["assignee"], t["priority"], t["status"]) == ("bob", "high", "resolved")
    # the other forms keep the desk's cap
    big = bob.post("/desk/ticket/1/fields", data={**form_of(bob, 1), "category": "x"},
                   files=[("attachments", ("photo.jpg", photo, "image/jpeg"))])
    assert big.status_code == 413 and ticket(settings, 1)["category"] == ""


@sqlite_only
@pytest.mark.parametrize("desk", [{"outgoing": {"max_message_size": 32 * 1024}}],
                         indirect=True)
def test_attachments_beyond_what_a_mail_can_carry_are_refused_with_the_text_kept(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    settings, daemon = desk
    new_ticket(daemon, relay)
    alice = browsers("alice")
    answer = alice.post("/desk/ticket/1/reply", data={**form_of(alice, 1), "text": "Logs <here>"},
                        files=[("attachments", ("big.log", b"x" * 30_000, "text/plain"))])
    assert answer.status_code == 413 and "too large" in answer.text
    assert "Logs &lt;here&gt;</textarea>" in answer.text
    assert len([r for r in outbox_rows(settings) if CAROL in r.rcpt_tos]) == 1  # the ack


# -- notes and fields ---------------------------------------------------------------------

@sqlite_only
def test_a_note_from_the_desk_stays_internal(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    settings, daemon = desk
    new_ticket(daemon, relay)
    alice = browsers("alice")
    done(alice.post("/desk/ticket/1/note", data={**form_of(alice, 1),
                                                 "text": "#assign bob\nCustomer is a VIP."},
                    files=[("attachments", ("contract.txt", b"gold\n", "text/plain"))]), 1)
    # the assignee hears of it (as by mail: the writer's own note is not mailed to her)
    told = next(m for m in wait_mails_to(relay, "bob@staff.test", 3)
                if str(m["Subject"]).startswith("Internal note: [HD-1]"))
    assert "Customer is a VIP." in body(told)
    assert len([r for r in outbox_rows(settings) if CAROL in r.rcpt_tos]) == 1  # the ack
    kept = [m for m in ticket(settings, 1)["messages"] if m["route"] == "web"]
    assert len(kept) == 1 and kept[0]["internal"]
    assert kept[0]["body_text"].strip() == "Customer is a VIP."
    assert [a["filename"] for a in kept[0]["attachments"]] == ["contract.txt"]
    assert ("note", "", "", "", "") in by(settings, 1, "alice")
    empty = alice.post("/desk/ticket/1/note", data={**form_of(alice, 1), "text": " "})
    assert empty.status_code == 422 and "The note is empty." in empty.text


@sqlite_only
def test_field_controls_are_commands_named_in_the_history(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    settings, daemon = desk
    new_ticket(daemon, relay)
    alice = browsers("alice")
    form = form_of(alice, 1)
    done(alice.post("/desk/ticket/1/fields", data={
        **form, "assign": "bob", "status": "", "priority": "high", "category": "hardware",
        "queue": "billing", "tag": "vip  fire"}), 1)
    assert by(settings, 1, "alice") == [
        ("change", "status", "new", "open", "first agent action"),
        ("change", "assignee", "", "bob", ""),
        ("change", "priority", "normal", "high", ""),
        ("change", "category", "", "hardware", ""),
        ("change", "queue", "support", "billing", ""),
        ("change", "tags", "", "fire,vip", ""),
    ]
    assert str(wait_mails_to(relay, "bob@staff.test", 2)[1]["Subject"]).startswith("Assigned")
    # the form sent back as it shows the ticket now changes nothing
    page = alice.get("/desk/ticket/1/actions")
    assert '<option value="bob" selected>' in page.text
    done(alice.post("/desk/ticket/1/fields", data={
        **form_of(alice, 1), "assign": "bob", "status": "open", "priority": "high",
        "category": "hardware", "queue": "billing", "tag": ""}), 1)
    assert len(by(settings, 1, "alice")) == 6
    refused = alice.post("/desk/ticket/1/fields", data={**form_of(alice, 1),
                                                        "queue": "nowhere", "priority": "low"})
    assert refused.status_code == 422 and "no queue &#39;nowhere&#39;" in refused.text
    assert ticket(settings, 1)["priority"] == "high"  # all or nothing, as by mail


# -- refusals -----------------------------------------------------------------------------

@sqlite_only
def test_a_stale_form_is_refused_with_the_fresh_state_and_the_text_kept(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    settings, daemon = desk
    new_ticket(daemon, relay)
    alice, bob = browsers("alice"), browsers("bob")
    drawn = form_of(alice, 1)
    done(bob.post("/desk/ticket/1/fields", data={**form_of(bob, 1), "assign": "bob"}), 1)

    typed = "Please <b>restart</b> it."
    stale = alice.post("/desk/ticket/1/reply", data={**drawn, "text": typed})
    assert stale.status_code == 409
    assert "changed while you were working on it" in stale.text
    assert "bob: change assignee - → bob" in stale.text  # what happened since
    assert "Please &lt;b&gt;restart&lt;/b&gt; it.</textarea>" in stale.text
    assert 'id="conversation"' in stale.text  # the whole ticket page, not the forms alone
    assert ticket(settings, 1)["status"] == "open"  # by bob's change, not alice's reply
    assert len([r for r in outbox_rows(settings) if CAROL in r.rcpt_tos]) == 1
    assert by(settings, 1, "alice") == []
    # the page it answers with is a fresh form: sending it again works
    fresh = hidden(stale, "version")
    assert fresh != drawn["version"]
    done(alice.post("/desk/ticket/1/reply", data={"csrf_token": drawn["csrf_token"],
                                                  "version": fresh, "text": typed}), 1)
    assert "Please <b>restart</b> it." in body(wait_mails_to(relay, CAROL, 2)[1])
    missing = alice.post("/desk/ticket/1/note", data={"csrf_token": drawn["csrf_token"],
                                                      "text": "no version"})
    assert missing.status_code == 409


def test_two_agents_sending_one_version_at_once_change_it_once(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    settings, daemon = desk
    new_ticket(daemon, relay)
    agents = {"alice": browsers("alice"), "bob": browsers("bob")}
    forms = {name: form_of(browser, 1) for name, browser in agents.items()}
    assert forms["alice"]["version"] == forms["bob"]["version"]
    priority = {"alice": "high", "bob": "low"}
    with ThreadPoolExecutor(2) as pool:
        answers = dict(zip(agents, pool.map(
            lambda name: agents[name].post("/desk/ticket/1/fields", data={
                **forms[name], "priority": priority[name]}).status_code, agents), strict=True))
    assert sorted(answers.values()) == [303, 409], answers
    winner = next(name for name, status in answers.items() if status == 303)
    assert ticket(settings, 1)["priority"] == priority[winner]
    loser = "bob" if winner == "alice" else "alice"
    assert by(settings, 1, loser) == []


@sqlite_only
def test_a_post_without_the_csrf_token_is_refused(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    settings, daemon = desk
    new_ticket(daemon, relay)
    alice = browsers("alice")
    form = form_of(alice, 1)
    for token in ({}, {"csrf_token": "forged"}):
        answer = alice.post("/desk/ticket/1/reply",
                            data={"version": form["version"], "text": "Hello", **token})
        assert answer.status_code == 403
    answer = alice.post("/desk/ticket/1/fields", data={"version": form["version"],
                                                       "priority": "low"})
    assert answer.status_code == 403
    assert by(settings, 1, "alice") == [] and ticket(settings, 1)["priority"] == "normal"


@sqlite_only
def test_an_agent_of_another_team_finds_no_such_ticket(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    settings, daemon = desk
    new_ticket(daemon, relay)
    version = form_of(browsers("alice"), 1)["version"]
    omar = browsers("omar")
    token = hidden(omar.get("/desk/"), "csrf_token")
    for path in ("actions", "version", "presence"):
        assert omar.get(f"/desk/ticket/1/{path}").status_code == 404
    for path, fields in (("reply", {"text": "Hi"}), ("note", {"text": "Hi"}),
                         ("fields", {"priority": "low"}), ("command", {"command": "close"}),
                         ("presence", {})):
        answer = omar.post(f"/desk/ticket/1/{path}",
                           data={"csrf_token": token, "version": version, **fields})
        assert answer.status_code == 404 and "nothing at this address" in answer.text
    assert by(settings, 1, "omar") == []
    assert browsers("alice").get("/desk/ticket/1/version").json()["replying"] == []
    for wrong in ("999", "99999999999999999999", "x"):
        assert omar.get(f"/desk/ticket/{wrong}/actions").status_code == 404
    # a lead sees every queue
    assert browsers("lisa").get("/desk/ticket/1/actions").status_code == 200


@sqlite_only
@pytest.mark.parametrize("desk", [{"queue": {"support": {"team": "support", "review": True}}}],
                         indirect=True)
def test_commands_are_the_registrys_and_so_are_its_refusals(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    settings, daemon = desk
    new_ticket(daemon, relay)
    alice, lisa = browsers("alice"), browsers("lisa")
    page = alice.get("/desk/ticket/1/actions")
    for name in ("close", "reopen", "watch", "unwatch"):
        assert f'name="command" value="{name}"' in page.text
    # a button is offered only where the registry would accept it: nothing to review yet
    for name in ("approve", "reject"):
        assert f'name="command" value="{name}"' not in page.text
        assert f'name="command" value="{name}"' not in lisa.get("/desk/ticket/1").text
    # in a review queue alice's resolution waits for lisa
    done(alice.post("/desk/ticket/1/command", data={**form_of(alice, 1), "command": "close"}), 1)
    assert ("review-requested", "", "", "resolved", "") in by(settings, 1, "alice")
    for name in ("approve", "reject"):
        assert f'name="command" value="{name}"' in lisa.get("/desk/ticket/1").text
        assert f'name="command" value="{name}"' not in alice.get("/desk/ticket/1").text
    refused = alice.post("/desk/ticket/1/command", data={**form_of(alice, 1),
                                                         "command": "reject", "arg": "not <yet>"})
    assert refused.status_code == 422
    assert "#reject not &lt;yet&gt;: only the team&#39;s lead may approve or reject" in refused.text
    assert 'value="not &lt;yet&gt;"' in refused.text  # the reason kept, in "any command"
    assert 'id="conversation"' in refused.text  # on the whole ticket page, drawn fresh
    unknown = alice.post("/desk/ticket/1/command", data={**form_of(alice, 1),
                                                         "command": "frobnicate"})
    assert unknown.status_code == 422 and "unknown command #frobnicate" in unknown.text
    bare = lisa.post("/desk/ticket/1/command", data={**form_of(lisa, 1), "command": "reject"})
    assert bare.status_code == 422 and "#reject: needs an argument" in bare.text
    done(lisa.post("/desk/ticket/1/command", data={**form_of(lisa, 1), "command": "reject",
                                                   "arg": "the fuser is still broken"}), 1)
    assert ("review-rejected", "", "", "", "requested by alice: the fuser is still broken") \
        in by(settings, 1, "lisa")
    assert str(wait_mails_to(relay, "alice@staff.test", 2)[1]["Subject"]).startswith(
        "Resolution rejected")
    assert ticket(settings, 1)["status"] == "open"
    assert len(mails_to(relay, CAROL)) == 1  # nothing reached the customer
    done(alice.post("/desk/ticket/1/command", data={**form_of(alice, 1), "command": "#unwatch"}),
         1)
    assert ticket(settings, 1)["watchers"] == ["lisa"]  # alice no longer


# -- who is replying, and has the ticket changed --------------------------------------------

def test_others_see_who_is_replying_and_that_the_ticket_changed(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    _, daemon = desk
    new_ticket(daemon, relay)
    alice, bob = browsers("alice"), browsers("bob")
    before = bob.get("/desk/ticket/1/version").json()
    assert before["replying"] == []
    box = alice.get("/desk/ticket/1/presence")  # the reply box, opened without script
    assert box.status_code == 200 and "autofocus" in box.text
    assert bob.get("/desk/ticket/1/version").json() == {**before, "replying": ["alice"]}
    assert alice.get("/desk/ticket/1/version").json()["replying"] == []  # not herself
    page = bob.get("/desk/ticket/1/actions")
    assert "alice is replying." in page.text
    # the script's heartbeat, twice (an upsert), then given up
    token = hidden(page, "csrf_token")
    for _ in range(2):
        beat = bob.post("/desk/ticket/1/presence", data={"csrf_token": token})
        assert beat.status_code == 200 and beat.json()["replying"] == ["alice"]
    assert alice.get("/desk/ticket/1/version").json()["replying"] == ["bob"]
    bob.post("/desk/ticket/1/presence", data={"csrf_token": token, "state": "gone"})
    assert alice.get("/desk/ticket/1/version").json()["replying"] == []
    # alice sends: she is no longer replying, and the version bob's page holds is old
    done(alice.post("/desk/ticket/1/reply", data={**form_of(alice, 1), "text": "Done."}), 1)
    after = bob.get("/desk/ticket/1/version").json()
    assert after["replying"] == [] and after["version"] != before["version"]
    # a mark nobody renews runs out
    alice.get("/desk/ticket/1/presence")
    assert bob.get("/desk/ticket/1/version").json()["replying"] == ["alice"]
    later = clock.now() + timedelta(minutes=2)
    clock.set_source(lambda: later)
    assert bob.get("/desk/ticket/1/version").json()["replying"] == []


@sqlite_only
def test_the_script_is_ours_and_the_pages_allow_only_it(
        desk: tuple[Settings, DaemonThread], relay: RelaySink, browsers: Browsers) -> None:
    _, daemon = desk
    new_ticket(daemon, relay)
    alice = browsers("alice")
    page = alice.get("/desk/ticket/1/actions")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    src = re.search(r'<script src="([^"]+)"', page.text)[1]  # type: ignore[index]
    script = alice.get(src)
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript")
    assert script.headers["x-content-type-options"] == "nosniff"
    assert "data-ticket-actions" in script.text and "innerHTML" not in script.text
    assert 'data-version-url="/desk/ticket/1/version"' in page.text
    version = alice.get("/desk/ticket/1/version")
    assert version.headers["cache-control"] == "no-store"
    assert version.json()["version"] == hidden(page, "version")
