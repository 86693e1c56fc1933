"""Ticket operations by mail, through the real daemon: #link, #parent (resolving a parent
with open children asks about them), #merge (everything moves, the merged ticket is a
pointer that mail threads through, no survey) and #unmerge (admins only, in a window),
and the same from the shell (`helpdesk tickets link|parent|merge|unmerge`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.store import db
from helpdesk.store.models import Ticket
from helpdesk.survey.steps import excluded
from tests import agent_mails
from tests.agent_desk import AGENTS, body, mails_to, msgid, reply_to, wait_mails_to
from tests.helpers import (
    DaemonThread,
    RelaySink,
    engine_for,
    invoke_cli,
    make_mail,
    run_cli,
    send,
    ticket,
    wait_ticket,
    wait_until,
)

CAROL = "carol@customer.test"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
WITH_ADMIN = AGENTS + """
[[agent]]
name = "ada"
email = "ada@staff.test"
teams = ["support"]
role = "admin"
"""


def _alice(daemon: DaemonThread, note: EmailMessage, typed: str) -> None:
    to = reply_to(note)
    raw = agent_mails.gmail(typed=typed, sender="Alice <alice@staff.test>", to=to,
                            original=note)
    send(daemon.port, raw, sender="alice@staff.test", rcpts=[to])


def _two_tickets(daemon: DaemonThread, relay: RelaySink) -> tuple[EmailMessage, EmailMessage]:
    """Carol writes twice; alice's new-ticket notifications of HD-1 and HD-2."""
    send(daemon.port, make_mail(subject="Printer on fire"))
    wait_mails_to(relay, "alice@staff.test", 1)
    send(daemon.port, make_mail(subject="Scanner smokes too", body="And the scanner."))
    notes = wait_mails_to(relay, "alice@staff.test", 2)
    return notes[0], notes[1]


def _events(t: dict, kind: str) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in t["events"] if e["kind"] == kind]


def test_link_and_parent_show_on_both_and_resolving_the_parent_asks_about_children(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    first, second = _two_tickets(daemon, relay)
    _alice(daemon, second, "#parent HD-1\n#link HD-1")
    wait_ticket(settings, 2, lambda t: _events(t, "link"), what="HD-2 linked")
    child, parent = ticket(settings, 2), ticket(settings, 1)
    assert child["links"] == {"parent": "HD-1", "children": [], "related": ["HD-1"],
                              "merged_into": None, "merged_here": []}
    assert parent["links"]["children"] == ["HD-2"]
    assert {(e["actor"], e["new"], e["detail"]) for e in _events(child, "link")} == {
        ("alice", "HD-1", "parent"), ("alice", "HD-1", "related")}
    assert {(e["actor"], e["new"], e["detail"]) for e in _events(parent, "link")} == {
        ("alice", "HD-2", "child"), ("alice", "HD-2", "related")}

    # a loop is refused, with why, and nothing of the mail is applied
    _alice(daemon, first, "#parent HD-2\n#priority high")
    wait_ticket(settings, 1, lambda t: _events(t, "command-error"), what="refusal")
    assert "cannot be its own ancestor" in _events(ticket(settings, 1), "command-error")[0][
        "detail"]
    assert ticket(settings, 1)["priority"] == "normal"

    # bob is on the child; alice resolves the parent: both are asked about the child
    run = invoke_cli(settings, "tickets", "assign", "HD-2", "bob", "--as", "bob")
    assert run.exit_code == 0, run.output
    _alice(daemon, first, "#close\n\nAll sorted, Carol.")
    done = wait_ticket(settings, 1, lambda t: t["status"] == "resolved", what="resolved")
    asked = _events(done, "open-children")
    assert [(e["actor"], e["detail"]) for e in asked] == [("alice", "HD-2 (open)")]
    for agent in ("alice@staff.test", "bob@staff.test"):
        wait_until(lambda a=agent: any("HD-2 (open)" in body(m) for m in mails_to(relay, a)),
                   what=f"{agent} asked about the open child")


def test_merge_moves_everything_and_mail_for_the_merged_ticket_lands_on_the_survivor(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    _, second = _two_tickets(daemon, relay)
    _alice(daemon, second, "#watch")
    wait_ticket(settings, 2, lambda t: _events(t, "watch"), what="alice watching HD-2")
    _alice(daemon, second, "#merge HD-1")
    merged = wait_ticket(settings, 2, lambda t: t["status"] == "closed", what="HD-2 merged")
    survivor = ticket(settings, 1)
    assert (merged["links"]["merged_into"], survivor["links"]["merged_here"]) == (
        "HD-1", ["HD-2"])
    # the messages (carol's and both of alice's mails) and the history moved
    assert merged["messages"] == []
    assert [m["subject"] for m in survivor["messages"] if m["from"] == CAROL] == [
        "Printer on fire", "Scanner smokes too"]
    assert any(e["kind"] == "watch" and e["actor"] == "alice" for e in survivor["events"])
    assert [(e["kind"], e["actor"], e["new"]) for e in merged["events"]][:1] == [
        ("merged", "alice", "HD-1")]
    assert [(e["actor"], e["new"]) for e in _events(survivor, "merged-in")] == [
        ("alice", "HD-2")]

    # carol answers HD-2's acknowledgement: it lands on HD-1, saying why
    ack2 = next(m for m in mails_to(relay, CAROL) if "[HD-2]" in str(m["Subject"]))
    send(daemon.port, make_mail(subject="Re: [HD-2] Scanner smokes too", body="Still smoking",
                                in_reply_to=f"<{msgid(ack2)}>"))
    landed = wait_ticket(settings, 1, lambda t: any(
        "Still smoking" in m["body_text"] for m in t["messages"]), what="reply on HD-1")
    assert "HD-2 was merged into HD-1" in next(
        m for m in landed["messages"] if "Still smoking" in m["body_text"])["threaded_by"]
    # alice answers HD-2's old notification: her command is about HD-1
    _alice(daemon, second, "#tag scanner")
    wait_ticket(settings, 1, lambda t: "scanner" in t["tags"], what="tag on HD-1")
    assert ticket(settings, 2)["tags"] == []
    with db.session_scope(engine_for(settings)) as session:
        gone, kept = session.get(Ticket, 2), session.get(Ticket, 1)
        assert (excluded(session, gone), excluded(session, kept)) == ("merged", "")  # type: ignore[arg-type]


def _desk(desk_settings: Callable[..., Settings], tmp_path: Path, **extra: object) -> Settings:
    """Two tickets from carol, ingested without a daemon, and ada the admin."""
    settings = desk_settings(agents=WITH_ADMIN, **extra)
    for i, subject in enumerate(("Printer on fire", "Scanner smokes too")):
        (tmp_path / f"{i}.eml").write_bytes(make_mail(subject=subject).as_bytes())
    result = run_cli(settings, "ingest", str(tmp_path / "0.eml"), str(tmp_path / "1.eml"))
    assert result.returncode == 0, result.stderr.decode()
    return settings


def test_time_given_on_a_merged_ticket_moves_with_it_and_back_with_an_unmerge(
    desk_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    """#time entries follow the notes and replies they were given on: after a merge the
    survivor's total holds the merged ticket's time; an unmerge gives it back (and keeps
    the time given on the survivor since)."""
    settings = _desk(desk_settings, tmp_path)

    def spend(number: str, agent: str, spent: str) -> None:
        done = invoke_cli(settings, "tickets", "note", number, "--as", agent, "-m", "work",
                          "--time", spent)
        assert done.exit_code == 0, done.output

    def by_ticket() -> dict[str, int]:
        return json.loads(invoke_cli(settings, "stats", "--json").stdout)["time"]["by_ticket"]

    spend("HD-1", "alice", "10m")
    spend("HD-2", "bob", "25m")
    assert by_ticket() == {"2": 25, "1": 10}
    assert invoke_cli(settings, "tickets", "merge", "HD-2", "HD-1", "--as", "alice").exit_code == 0
    assert by_ticket() == {"1": 35}
    spend("HD-1", "alice", "5m")
    assert invoke_cli(settings, "tickets", "unmerge", "HD-2", "--as", "ada").exit_code == 0
    assert by_ticket() == {"2": 25, "1": 15}


@SQLITE_ONLY
def test_the_shell_links_merges_and_only_an_admin_unmerges_within_the_window(
    desk_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    settings = _desk(desk_settings, tmp_path, ticket_ops={"unmerge_window": "1h"})
    linked = invoke_cli(settings, "tickets", "link", "HD-2", "HD-1", "--as", "alice")
    assert linked.exit_code == 0, linked.output
    nope = invoke_cli(settings, "tickets", "merge", "HD-2", "HD-9", "--as", "alice")
    assert nope.exit_code != 0 and "no ticket HD-9" in nope.output
    merged = invoke_cli(settings, "tickets", "merge", "HD-2", "HD-1", "--as", "alice")
    assert merged.exit_code == 0, merged.output
    assert "HD-2: merged into HD-1" in merged.stdout
    again = invoke_cli(settings, "tickets", "link", "HD-1", "HD-2", "--as", "alice")
    assert "HD-2 was merged into HD-1: name that one" in again.output

    refused = invoke_cli(settings, "tickets", "unmerge", "HD-2", "--as", "alice")
    assert refused.exit_code != 0 and "only an admin may undo a merge" in refused.output
    assert ticket(settings, 2)["messages"] == []
    undone = invoke_cli(settings, "tickets", "unmerge", "HD-2", "--as", "ada")
    assert undone.exit_code == 0, undone.output
    back, kept = ticket(settings, 2), ticket(settings, 1)
    assert back["status"] == "open" and [m["subject"] for m in back["messages"]] == [
        "Scanner smokes too"]
    assert [m["subject"] for m in kept["messages"]] == ["Printer on fire"]
    assert [e["actor"] for e in _events(back, "unmerged")] == ["ada"]
    assert [e["actor"] for e in _events(kept, "unmerged")] == ["ada"]

    # merged again, and the window passes: not even an admin may undo it now
    assert invoke_cli(settings, "tickets", "merge", "HD-2", "HD-1", "--as", "bob").exit_code == 0
    clock.freeze(clock.now() + timedelta(hours=2))
    try:
        late = invoke_cli(settings, "tickets", "unmerge", "HD-2", "--as", "ada")
    finally:
        clock.set_source(None)
    assert late.exit_code != 0 and "too long ago to undo" in late.output
