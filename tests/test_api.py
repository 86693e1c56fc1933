"""The JSON API (helpdesk/web/api/) against the real daemon on loopback: tokens made by
the CLI, tickets created through the spool and the pipeline, changes through the
#command registry with If-Match, the agent's visibility, scopes, revocation, paging by
cursor, messages and attachments, search and the rate limit."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from helpdesk.store.models import Event
from tests.api_helpers import CAROL, api_client, api_desk, create_ticket, make_token
from tests.helpers import engine_for, invoke_cli, make_mail, wait_ticket, wait_until
from tests.web_helpers import Desk

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _events(desk: Desk, number: int) -> list[Event]:
    from sqlmodel import Session, select

    with Session(engine_for(desk.settings)) as session:
        return list(session.exec(select(Event).where(Event.ticket_id == number)
                                 .order_by(Event.id)).all())


def test_create_goes_through_the_pipeline_and_changes_need_the_current_version(
        make_desk: Callable[..., Desk]) -> None:
    desk = api_desk(make_desk)
    alice = api_client(desk, make_token(desk, "alice", "write", "crm"))
    assert api_client(desk, "hd_nonsense").get("/tickets").status_code == 401
    assert desk.client().get("/api/v1/tickets").status_code == 401  # no token at all

    number = create_ticket(alice)
    # the pipeline made it: the customer was acknowledged, the history says how it came
    wait_until(lambda: desk.mails_to(CAROL, ""), timeout=15, what="the acknowledgement")
    created = [e for e in _events(desk, number) if e.kind == "created"]
    assert created and created[0].actor == CAROL and "api:alice:" in created[0].detail

    shown = alice.get(f"/tickets/{number}")
    assert shown.status_code == 200
    tag = shown.headers["etag"]
    assert tag == f'"{shown.json()["version"]}"' and shown.json()["customer"] == CAROL

    change = {"priority": "high", "tags_add": ["vip"]}
    assert alice.patch(f"/tickets/{number}", json=change).status_code == 428
    stale = alice.patch(f"/tickets/{number}", json=change, headers={"If-Match": '"0.0"'})
    assert stale.status_code == 412 and stale.headers["etag"] == tag
    done = alice.patch(f"/tickets/{number}", json=change, headers={"If-Match": tag})
    assert done.status_code == 200, done.text
    assert done.json()["ticket"]["priority"] == "high" and "vip" in done.json()["ticket"]["tags"]
    assert done.headers["etag"] != tag
    # the same old version again: someone (we) changed it since, so it is refused
    again = alice.patch(f"/tickets/{number}", json={"priority": "low"},
                        headers={"If-Match": tag})
    assert again.status_code == 412
    changes = [(e.actor, e.field, e.new) for e in _events(desk, number) if e.kind == "change"]
    assert ("alice", "priority", "high") in changes


def test_reply_note_and_commands_go_through_the_registry(
        make_desk: Callable[..., Desk]) -> None:
    desk = api_desk(make_desk)
    alice = api_client(desk, make_token(desk, "alice"))
    number = create_ticket(alice)
    tag = alice.get(f"/tickets/{number}").headers["etag"]

    refused = alice.post(f"/tickets/{number}/commands", headers={"If-Match": tag},
                         json={"commands": ["#priority high", "#nosuchcommand"]})
    assert refused.status_code == 422 and any("nosuchcommand" in d
                                              for d in refused.json()["detail"])
    assert alice.get(f"/tickets/{number}").json()["priority"] != "high"  # none applied

    ran = alice.post(f"/tickets/{number}/commands", headers={"If-Match": tag},
                     json={"commands": ["#priority high", "#assign me"]})
    assert ran.status_code == 200, ran.text
    assert ran.json()["ticket"]["assignee"] == "alice"

    tag = ran.headers["etag"]
    noted = alice.post(f"/tickets/{number}/note", headers={"If-Match": tag},
                       json={"text": "Called the customer."})
    assert noted.status_code == 200, noted.text
    tag = noted.headers["etag"]
    replied = alice.post(f"/tickets/{number}/reply", headers={"If-Match": tag},
                         json={"text": "Unplug it, please.", "close": True})
    assert replied.status_code == 200, replied.text
    assert replied.json()["ticket"]["status"] == "resolved"
    wait_until(lambda: any("Unplug it" in m.get_body(("plain",)).get_content()
                           for m in desk.mails_to(CAROL, "")), timeout=15, what="the reply")

    messages = alice.get(f"/tickets/{number}/messages").json()["items"]
    kinds = [(m["direction"], m["internal"]) for m in messages]
    assert ("in", True) in kinds and ("out", False) in kinds  # the note, the reply
    assert any(m["text"].startswith("Called the customer.") for m in messages)

    read_only = api_client(desk, make_token(desk, "alice", "read"))
    assert read_only.post(f"/tickets/{number}/note", headers={"If-Match": tag},
                          json={"text": "x"}).status_code == 403
    assert read_only.get(f"/tickets/{number}").status_code == 200


def test_visibility_revocation_and_the_rate_limit(make_desk: Callable[..., Desk]) -> None:
    desk = api_desk(make_desk, api={"rate_limit": 60, "rate_window": "1h"})
    alice_token = make_token(desk, "alice")
    alice = api_client(desk, alice_token)
    number = create_ticket(alice)
    omar = api_client(desk, make_token(desk, "omar", "write"))
    # omar works the ops team's queues: a support ticket is as if it did not exist
    assert omar.get(f"/tickets/{number}").status_code == 404
    assert omar.get("/tickets", params={"status": "any"}).json()["items"] == []
    assert omar.get(f"/tickets/{number + 1000}").status_code == 404

    listed = invoke_cli(desk.settings, "api", "token", "list")
    assert listed.exit_code == 0 and "alice" in listed.output and alice_token not in listed.output
    token_id = listed.output.splitlines()[0].split("\t")[0]
    assert invoke_cli(desk.settings, "api", "token", "revoke", token_id).exit_code == 0
    assert alice.get(f"/tickets/{number}").status_code == 401

    # the limit counts per token: omar used 3 of his 60 above
    limited = [omar.get("/queues").status_code for _ in range(58)]
    assert limited[:57] == [200] * 57 and limited[57] == 429
    assert int(omar.get("/queues").headers["retry-after"]) > 0
    lisa = api_client(desk, make_token(desk, "lisa", "read"))
    assert lisa.get("/queues").status_code == 200


def test_paging_by_cursor_search_and_attachments(make_desk: Callable[..., Desk]) -> None:
    desk = api_desk(make_desk)
    lisa = api_client(desk, make_token(desk, "lisa", "read"))
    for n in range(3):
        desk.deliver(make_mail(subject=f"Toner empty {n}", body=f"Toner cartridge {n} empty"))
    mail = make_mail(subject="Scan attached", body="See the scan.")
    assert isinstance(mail, EmailMessage)
    mail.add_attachment(b"<script>alert(1)</script>", maintype="text", subtype="html",
                        filename="scan.html")
    desk.deliver(mail)
    wait_ticket(desk.settings, 4)

    seen, cursor = [], None
    while True:
        page = lisa.get("/tickets", params={"limit": 2, "sort": "age",
                                            **({"cursor": cursor} if cursor else {})}).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [1, 2, 3, 4]
    assert lisa.get("/tickets", params={"cursor": "nonsense!"}).status_code == 422

    hits = lisa.get("/search", params={"q": "toner", "limit": 2}).json()
    assert len(hits["items"]) == 2 and hits["next_cursor"]
    rest = lisa.get("/search", params={"q": "toner", "cursor": hits["next_cursor"]}).json()
    assert {h["ticket_id"] for h in hits["items"] + rest["items"]} == {1, 2, 3}

    messages = lisa.get("/tickets/4/messages").json()["items"]
    url = messages[0]["attachments"][0]["url"]
    got = lisa.get(url.removeprefix("/api/v1"))
    assert got.status_code == 200 and got.content == b"<script>alert(1)</script>"
    assert got.headers["content-disposition"].startswith("attachment")
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "text/html" not in got.headers["content-type"]
    assert lisa.get("/tickets/3/attachments/1").status_code == 404  # not that ticket's

    # oldest first pages by keyset: a ticket closed between two pages shifts nothing
    first = lisa.get("/tickets", params={"limit": 2, "sort": "age"}).json()
    assert [t["id"] for t in first["items"]] == [1, 2]
    closed = invoke_cli(desk.settings, "tickets", "status", "HD-1", "closed", "--as", "lisa")
    assert closed.exit_code == 0, closed.output
    rest = lisa.get("/tickets", params={"limit": 2, "sort": "age",
                                        "cursor": first["next_cursor"]}).json()
    assert [t["id"] for t in rest["items"]] == [3, 4] and rest["next_cursor"] is None
    # a cursor of one order is not one of another
    assert lisa.get("/tickets", params={"sort": "priority",
                                        "cursor": first["next_cursor"]}).status_code == 422


def test_an_agents_address_cannot_open_a_ticket(make_desk: Callable[..., Desk]) -> None:
    desk = api_desk(make_desk)
    alice = api_client(desk, make_token(desk, "alice"))
    answer = alice.post("/tickets", json={"from_addr": "lisa@staff.test", "subject": "x",
                                          "text": "#close"})
    assert answer.status_code == 422
    assert alice.post("/tickets", json={"from_addr": CAROL}).status_code == 422
    assert alice.get("/nowhere").json()["error"] == "Not found."


def test_contacts_and_stats(make_desk: Callable[..., Desk]) -> None:
    desk = api_desk(make_desk)
    alice = api_client(desk, make_token(desk, "alice", "read"))
    omar = api_client(desk, make_token(desk, "omar", "read"))
    lisa = api_client(desk, make_token(desk, "lisa", "read"))
    desk.deliver(make_mail(subject="Toner empty"))
    wait_ticket(desk.settings, 1)

    found = alice.get("/contacts", params={"email": CAROL})
    assert found.status_code == 200, found.text
    contact = found.json()
    assert contact["email"] == CAROL and [t["id"] for t in contact["tickets"]] == [1]
    assert contact["organisation"] == "customer.test" and contact["vip"] is False
    assert invoke_cli(desk.settings, "contacts", "vip", CAROL).exit_code == 0
    assert alice.get(f"/contacts/{contact['id']}").json()["vip"] is True
    contact["vip"] = True
    assert alice.get(f"/contacts/{contact['id']}").json() == contact
    # omar sees none of carol's tickets: she is nobody he may know of
    assert omar.get(f"/contacts/{contact['id']}").status_code == 404
    assert omar.get("/contacts", params={"email": CAROL}).status_code == 404
    assert alice.get("/contacts", params={"email": "nobody@customer.test"}).status_code == 404

    assert alice.get("/stats").status_code == 403  # every queue's figures: leads only
    figures = lisa.get("/stats", params={"since": "2020-01-01"})
    assert figures.status_code == 200, figures.text
    assert figures.json()["backlog"]["total"] == 1
    assert figures.json()["backlog"]["by_queue"] == {"support": 1}


def test_two_clients_with_one_version_cannot_both_change(
        make_desk: Callable[..., Desk]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    desk = api_desk(make_desk)
    alice = api_client(desk, make_token(desk, "alice"))
    lisa = api_client(desk, make_token(desk, "lisa"))
    number = create_ticket(alice)
    tag = alice.get(f"/tickets/{number}").headers["etag"]

    def change(args: tuple[object, str]) -> int:
        client, priority = args
        return int(client.patch(f"/tickets/{number}",  # type: ignore[attr-defined]
                                json={"priority": priority},
                                headers={"If-Match": tag}).status_code)
    with ThreadPoolExecutor(2) as pool:
        answers = sorted(pool.map(change, [(alice, "high"), (lisa, "low")]))
    assert answers == [200, 412]
    priorities = [e.new for e in _events(desk, number) if e.field == "priority"]
    assert len(priorities) == 1


def test_a_command_cannot_reach_a_ticket_the_tokens_agent_may_not_see(
        make_desk: Callable[..., Desk]) -> None:
    desk = api_desk(make_desk, queue={"ops": {"team": "ops"}})
    alice = api_client(desk, make_token(desk, "alice"))
    hidden, moved = create_ticket(alice), create_ticket(alice, subject="Server down")
    lisa = api_client(desk, make_token(desk, "lisa", "write"))
    tag = lisa.get(f"/tickets/{moved}").headers["etag"]
    assert lisa.post(f"/tickets/{moved}/commands", headers={"If-Match": tag},
                     json={"commands": ["#queue ops"]}).status_code == 200
    omar = api_client(desk, make_token(desk, "omar", "write"))  # ops: sees `moved` only
    for line in (f"#link HD-{hidden}", f"#merge HD-{hidden}"):
        tag = omar.get(f"/tickets/{moved}").headers["etag"]
        refused = omar.post(f"/tickets/{moved}/commands", headers={"If-Match": tag},
                            json={"commands": [line]})
        assert refused.status_code == 422, refused.text
        assert f"no ticket HD-{hidden}" in refused.text
    assert [e.kind for e in _events(desk, hidden) if e.kind in ("link", "merged")] == []
    assert alice.get(f"/tickets/{hidden}").json()["status"] == "new"


KB_ARTICLE = ("---\ntitle: Reset your password\ncategory: accounts\nvisibility: internal\n"
              "status: published\n---\n## Question\n\nI forgot my password.\n\n"
              "## Answer\n\nUse the reset link on the sign-in page.\n")


def test_knowledge_base_articles_are_read_and_drafted_through_the_api(
        make_desk: Callable[..., Desk], tmp_path: Path) -> None:
    desk = api_desk(make_desk, kb={"enabled": True}, queue={"ops": {"team": "ops"}})
    (tmp_path / "a.md").write_text(KB_ARTICLE)
    assert invoke_cli(desk.settings, "kb", "import", str(tmp_path)).exit_code == 0
    alice = api_client(desk, make_token(desk, "alice"))
    omar = api_client(desk, make_token(desk, "omar", "read"))
    listed = alice.get("/kb/articles").json()["items"]
    assert [(a["title"], a["visibility"], a["status"]) for a in listed] == [
        ("Reset your password", "internal", "published")]  # internal: agents see it
    assert [a["id"] for a in alice.get("/kb/articles", params={"q": "password"})
            .json()["items"]] == [listed[0]["id"]]
    assert alice.get("/kb/articles", params={"q": "zeppelin"}).json()["items"] == []
    assert alice.get(f"/kb/articles/{listed[0]['id']}").json()["question"].startswith(
        "I forgot")

    # a draft from alice's ticket, by #kb through the commands door
    number = create_ticket(alice)
    tag = alice.get(f"/tickets/{number}").headers["etag"]
    drafted = alice.post(f"/tickets/{number}/commands", headers={"If-Match": tag},
                         json={"commands": ["#kb"], "text": "Unplug it and call the fire "
                               "brigade."})
    assert drafted.status_code == 200, drafted.text
    drafts = alice.get("/kb/articles", params={"status": "draft"}).json()["items"]
    assert [d["ticket_id"] for d in drafts] == [number]
    # it quotes a customer omar may not know of: not his to read
    assert omar.get("/kb/articles", params={"status": "draft"}).json()["items"] == []
    assert omar.get(f"/kb/articles/{drafts[0]['id']}").status_code == 404
    assert omar.get(f"/kb/articles/{listed[0]['id']}").status_code == 200
    assert alice.get("/kb/articles/99999").status_code == 404


def test_ticket_operations_through_the_commands_door(make_desk: Callable[..., Desk]) -> None:
    """Link, canned reply, time, split and merge: the registry's commands, applied as
    the token's agent, each recorded under their name."""
    from tests.test_canned_replies import RESET, write_replies

    desk = api_desk(make_desk)
    write_replies(desk.settings, **{"printer-reset": RESET})
    alice = api_client(desk, make_token(desk, "alice"))
    first = create_ticket(alice)
    second = create_ticket(alice, subject="Scanner broken", text="The scanner too.")

    def run(number: int, *lines: str, text: str = "") -> dict[str, Any]:
        tag = alice.get(f"/tickets/{number}").headers["etag"]
        done = alice.post(f"/tickets/{number}/commands", headers={"If-Match": tag},
                          json={"commands": list(lines), "text": text})
        assert done.status_code == 200, done.text
        return dict(done.json())

    run(first, f"#link HD-{second}", "#reply printer-reset", "#time 25m")
    assert ("link", "alice", f"HD-{second}") in [
        (e.kind, e.actor, e.new) for e in _events(desk, first)]
    assert ("link", "alice", f"HD-{first}") in [
        (e.kind, e.actor, e.new) for e in _events(desk, second)]
    canned = wait_until(lambda: [text for m in desk.mails_to(CAROL, f"[HD-{first}]")
                                 if "switch it off" in (text := m.get_body().get_content())],
                        timeout=15, what="the canned reply to carol")
    assert f"HD-{first}" in canned[0]  # its placeholders filled
    spent = invoke_cli(desk.settings, "stats", "--time-csv", "--since", "2020-01-01")
    assert spent.exit_code == 0 and f"HD-{first}" in spent.output and ",25" in spent.output

    # carol's second mail on the first ticket becomes a ticket of its own
    alice.post("/tickets", json={"from_addr": CAROL, "subject": f"Re: [HD-{first}] x",
                                 "text": "And the fax."})
    wait_until(lambda: len(alice.get(f"/tickets/{first}/messages").json()["items"]) >= 3,
               timeout=20, what="carol's follow-up on the first ticket")
    numbers = [m["id"] for m in alice.get(f"/tickets/{first}/messages").json()["items"]
               if "And the fax." in m["text"]]
    assert len(numbers) == 1
    run(first, f"#split {numbers[0]}")
    third = wait_ticket(desk.settings, second + 1)
    assert any(e["kind"] == "split-from" and e["actor"] == "alice" for e in third["events"])

    run(second, f"#merge HD-{first}")
    assert alice.get(f"/tickets/{second}").json()["status"] == "closed"
    assert ("merged-in", "alice") in [(e.kind, e.actor) for e in _events(desk, first)]


def test_a_ticket_created_through_the_api_wakes_the_pipeline(
        make_desk: Callable[..., Desk]) -> None:
    """The API's create spools the request and pokes the pipeline, as the SMTP listener
    does: it does not wait for the pipeline's next idle look."""
    desk = api_desk(make_desk)
    alice = api_client(desk, make_token(desk, "alice", "write", "crm"))
    desk.daemon.pipeline_waits_for_a_poke()
    assert create_ticket(alice) == 1  # waits 20 s at most, the idle wait is 600 s
