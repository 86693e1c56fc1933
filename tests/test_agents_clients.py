"""Agents answer from Gmail and Outlook in English, German, French and Spanish, and
from Apple Mail and Thunderbird: the customer always gets only what was typed (with
the sign-off, without the signature)."""

from __future__ import annotations

import time
from email.message import EmailMessage

import pytest

from helpdesk.agents import commands as agent_commands
from helpdesk.agents.commands import Situation
from helpdesk.config.agents import build
from helpdesk.config.settings import Settings
from helpdesk.mail import authres
from helpdesk.mail.replytext import latest_reply
from tests import agent_mails
from tests.agent_desk import AGENTS, body, mails_to, reply_to
from tests.helpers import DaemonThread, RelaySink, make_mail, send, wait_until

CLIENTS = [(agent_mails.gmail, lang) for lang in ("en", "de", "fr", "es")] + \
    [(agent_mails.outlook, lang) for lang in ("en", "de", "fr", "es")] + \
    [(agent_mails.apple_mail, None), (agent_mails.thunderbird, None)]
TYPED = "Hello Carol,\n\nplease restart the printer:\n- unplug it\n- wait ten seconds"




@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_client_and_language_reaches_the_customer_as_clean_text(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    _, daemon = desk
    for number, (client, lang) in enumerate(CLIENTS, start=1):
        name = f"{client.__name__}/{lang or '-'}"
        send(daemon.port, make_mail(subject=f"Problem {number}"))
        note = wait_until(lambda n=number: _with_subject(relay, "alice@staff.test",
                                                         f"[HD-{n}] "), what=name)[0]
        kwargs = {"lang": lang} if lang else {}
        raw = client(typed=f"{TYPED}\n\nBest regards\nAlice", sender="alice@staff.test",  # type: ignore[operator]
                     to=reply_to(note), original=note, **kwargs)
        send(daemon.port, raw, sender="alice@staff.test", rcpts=[reply_to(note)])
        answer = wait_until(lambda n=number: _with_subject(relay, "carol@customer.test",
                                                           f"Re: [HD-{n}] Problem {n}"),
                            what=f"the answer sent from {name}")[0]
        text = body(answer).split("\n-- \n")[0].strip()
        assert text == f"{TYPED}\n\nBest regards\nAlice", name  # the sign-off stays


def _with_subject(relay: RelaySink, address: str, part: str) -> list[EmailMessage]:
    return [m for m in mails_to(relay, address) if part in str(m["Subject"])]


QUOTED = "Help!\n\nNew ticket: [HD-1]\nHelp, the printer is on fire."


@pytest.mark.parametrize(("typed", "expected"), [
    ("Ok.\n\nOn Tue, 4 Feb 2025 at 09:12, Carol <carol@customer.test> wrote:\n> " + QUOTED, "Ok."),
    ("Ok.\n\nAm 04.02.2025 um 09:12 schrieb Carol:\n> " + QUOTED, "Ok."),
    ("Ok.\n\nLe 4 févr. 2025 à 09:12, Carol a écrit :\n> " + QUOTED, "Ok."),
    ("Ok.\n\nEl mar, 4 feb 2025 a las 9:12, Carol escribió:\n> " + QUOTED, "Ok."),
    ("Ok.\n\n-----Original Message-----\nFrom: Carol\nSent: Tuesday\n\n" + QUOTED, "Ok."),
    ("Ok.\n\n-- \nAlice\nExample Inc.", "Ok."),
    ("Ok.\n- one\n- two", "Ok.\n- one\n- two"),
    # a closing salutation and the name after it stay; the signature still goes
    ("Ok.\n\nBest regards\nAlice\n\n-- \nAlice Agent\nExample Inc.",
     "Ok.\n\nBest regards\nAlice"),
    ("Ok.\n\nMit freundlichen Grüßen\n\nAlice Agent\n\nGesendet von meinem iPhone",
     "Ok.\n\nMit freundlichen Grüßen\n\nAlice Agent"),
    ("Ok.\n\nThanks,\nSent from my iPhone", "Ok.\n\nThanks,"),
])
def test_quoted_history_and_signatures_are_cut(typed: str, expected: str) -> None:
    assert latest_reply(typed) == expected


def test_a_24_mb_reply_is_read_in_bounded_time_by_its_head() -> None:
    # the reply parser's regexes took 72 s for this one line (a second per megabyte)
    line = "ERROR printer spooler stalled; " * (24 * 1024 * 1024 // 31)
    started = time.monotonic()
    assert latest_reply(line) == line.strip()  # nothing quoted: all of it is the reply
    history = "Thanks, fixed.\n\nOn Mon, 3 Feb 2025 at 10:00, Carol <c@customer.test> " \
        "wrote:\n" + "> the printer log\n" * 1_500_000
    assert latest_reply(history) == "Thanks, fixed."
    assert time.monotonic() - started < 20


def _situation(**kwargs: object) -> Situation:
    directory = build(__import__("tomllib").loads(AGENTS))
    alice = directory.agent("alice")
    assert alice is not None
    base: dict[str, object] = {"agent": alice, "directory": directory,
                               "queues": {"support", "billing"}, "status": "open"}
    return Situation(**{**base, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "error"), [
    ("#assign nobody", "no agent named 'nobody'"),
    ("#status done", "status must be one of"),
    ("#queue sales", "no queue 'sales'"),
    ("#note extra", "#note takes no argument"),
    ("#reject", "needs an argument"),
    ("#approve", "only the team's lead"),
    ("#priority high\n#priority low", "contradicts an earlier #priority high"),
    ("#close\n#note", "choose one"),
    ("#reopen", "not resolved or closed"),
])
def test_invalid_commands_are_explained(text: str, error: str) -> None:
    checked = agent_commands.check(agent_commands.split(text), _situation())
    assert any(error in e for e in checked.errors), checked.errors


def test_commands_stop_at_the_first_line_of_text() -> None:
    reply = agent_commands.split("\n#assign me\n\n#tag vip\nHello,\n#not a command\n")
    assert [c.name for c in reply.commands] == ["assign", "tag"]
    assert reply.text == "Hello,\n#not a command"
    checked = agent_commands.check(reply, _situation())
    assert (checked.errors, checked.assignee) == ([], "alice")


def test_a_lead_approves_only_a_pending_review() -> None:
    lisa = _situation().directory.agent("lisa")
    none_pending = _situation(agent=lisa, is_lead=True)
    assert agent_commands.check(agent_commands.split("#approve"), none_pending).errors
    pending = _situation(agent=lisa, is_lead=True, review_pending=True)
    assert agent_commands.check(agent_commands.split("#approve"), pending).errors == []


def test_authentication_results_need_a_pass_aligned_with_the_domain() -> None:
    header = ["mx.example.test; dkim=pass header.d=staff.test; spf=fail smtp.mailfrom=x@y.test"]
    assert authres.passes(header, "staff.test")
    assert authres.passes(header, "mail.staff.test")
    assert not authres.passes(header, "other.test")
    assert not authres.passes(header, "staff.test", trusted=["mx.other.test"])
    assert not authres.passes(["mx; dkim=fail header.d=staff.test"], "staff.test")
