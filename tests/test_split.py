"""Splitting: a customer raised a second problem in a reply; `#split` in the agent's
answer to that reply's notification (through the real daemon) makes it a new ticket
related to the old one, where the customer's further mail about it lands; the shell's
`helpdesk tickets split HD-N MESSAGE`."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from helpdesk.config.settings import Settings
from tests import agent_mails
from tests.agent_desk import body, mails_to, msgid, reply_to, wait_mails_to
from tests.helpers import (
    DaemonThread,
    RelaySink,
    invoke_cli,
    make_mail,
    run_cli,
    send,
    ticket,
    wait_ticket,
    wait_until,
)

CAROL = "carol@customer.test"


def _alice(daemon: DaemonThread, note: EmailMessage, typed: str) -> None:
    to = reply_to(note)
    raw = agent_mails.apple_mail(typed=typed, sender="Alice <alice@staff.test>", to=to,
                                 original=note)
    send(daemon.port, raw, sender="alice@staff.test", rcpts=[to])


def test_split_in_answer_to_a_replys_notification_makes_that_mail_a_new_ticket(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail(subject="Printer on fire"))
    opened = wait_mails_to(relay, "alice@staff.test", 1)[0]
    ack = wait_mails_to(relay, CAROL, 1)[0]
    scanner = make_mail(subject="Re: [HD-1] Printer on fire", body="Also my scanner smokes.",
                        in_reply_to=f"<{msgid(ack)}>")
    send(daemon.port, scanner)
    told = wait_mails_to(relay, "alice@staff.test", 2)[1]
    assert "Also my scanner smokes." in body(told)

    _alice(daemon, opened, "#split")  # the notification of the mail that opened it
    refusal = wait_mails_to(relay, "alice@staff.test", 3)[2]
    assert "that mail opened this ticket" in body(refusal)

    _alice(daemon, told, "#split")
    new = wait_ticket(settings, 2, what="the split-off ticket")
    assert new["subject"] == "Printer on fire" and new["customer"] == CAROL
    assert [m["body_text"].strip() for m in new["messages"]] == ["Also my scanner smokes."]
    assert "split from ticket 1 by alice" in new["messages"][0]["threaded_by"]
    old = ticket(settings, 1)
    assert all("scanner" not in m["body_text"] for m in old["messages"] if m["from"] == CAROL)
    assert [(e["actor"], e["new"]) for e in old["events"] if e["kind"] == "split"] == [
        ("alice", "HD-2")]
    assert [(e["actor"], e["new"]) for e in new["events"] if e["kind"] == "split-from"] == [
        ("alice", "HD-1")]
    assert [(e["new"], e["detail"]) for e in new["events"] if e["kind"] == "link"] == []
    # bob (the team, nobody assigned) hears of the new ticket; alice did it herself
    wait_until(lambda: any("[HD-2]" in str(m["Subject"]) for m in mails_to(relay,
                                                                           "bob@staff.test")),
               what="bob told of HD-2")
    # carol's answer to her own scanner mail threads onto the new ticket (one naming
    # our acknowledgement of HD-1 in References would still go to HD-1: ours first)
    send(daemon.port, make_mail(subject="Re: Printer on fire", body="Scanner: photo",
                                in_reply_to=f"<{msgid(scanner)}>"))
    wait_ticket(settings, 2, lambda t: any("Scanner: photo" in m["body_text"]
                                           for m in t["messages"]), what="follow-up on HD-2")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_shell_splits_a_message_by_its_number(
    desk_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    settings = desk_settings()
    first = make_mail()
    second = make_mail(subject="Re: [HD-1] Printer on fire", body="And the scanner.",
                       in_reply_to=f"<{msgid(first)}>")
    for i, mail in enumerate((first, second)):
        (tmp_path / f"{i}.eml").write_bytes(mail.as_bytes())
    assert run_cli(settings, "ingest", str(tmp_path / "0.eml"),
                   str(tmp_path / "1.eml")).returncode == 0
    numbers = [m["number"] for m in ticket(settings, 1)["messages"]]
    wrong = invoke_cli(settings, "tickets", "split", "HD-1", "999", "--as", "bob")
    assert wrong.exit_code == 1 and "no message 999 on this ticket" in wrong.output
    done = invoke_cli(settings, "tickets", "split", "HD-1", str(numbers[1]), "--as", "bob")
    assert done.exit_code == 0, done.output
    assert [m["body_text"].strip() for m in ticket(settings, 2)["messages"]] == [
        "And the scanner."]
    assert len(ticket(settings, 1)["messages"]) == 1
