"""Automatic replies on a ticket (out-of-office, vacation, autoresponders; RFC 3834),
from agents and customers alike: kept on the ticket and in its history for the agents,
but nobody's reply. No status change, no reopening, no new ticket, no notification,
and neither the SLA nor the wait for a pending customer counts them."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import pytest

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.schedule import sla
from helpdesk.spool import Envelope, Spool
from helpdesk.store import db
from helpdesk.store.models import Ticket
from tests import agent_mails
from tests.agent_desk import msgid, reply_to, wait_mails_to
from tests.conftest import MakeSettings
from tests.helpers import (
    DaemonThread,
    RelaySink,
    all_tickets,
    engine_for,
    make_mail,
    outbox_rows,
    run_pipeline,
    send,
    ticket_row,
    wait_ticket,
)
from tests.sched import agent_reply, at, make_ticket, run_pass, set_status, with_agents

CAROL = "carol@customer.test"




def _alice(daemon: DaemonThread, note: EmailMessage, typed: str,
           headers: dict[str, str] | None = None) -> None:
    raw = agent_mails.gmail(typed=typed, sender="Alice <alice@staff.test>", to=reply_to(note),
                            original=note)
    raw = b"".join(f"{k}: {v}\r\n".encode() for k, v in (headers or {}).items()) + raw
    send(daemon.port, raw, sender="alice@staff.test", rcpts=[reply_to(note)])


def _carol_away(daemon: DaemonThread, answered: EmailMessage, headers: dict[str, str],
                envelope_sender: str = CAROL) -> None:
    """Carol's mail system answers one of our mails for her."""
    send(daemon.port, make_mail(
        to=reply_to(answered), subject=f"Automatic reply: {answered['Subject']}",
        in_reply_to=f"<{msgid(answered)}>", headers=headers,
        body="I am out of the office until Monday and will read your mail then."),
        sender=envelope_sender, rcpts=[reply_to(answered)])


def _auto_replies(t: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in t["events"] if e["kind"] == "auto-reply"]


def _kinds(settings: Settings) -> list[str]:
    return [r.kind for r in outbox_rows(settings)]


@pytest.mark.parametrize(("typed", "status", "headers"), [
    ("Hi Carol, please switch it off at the wall.", "pending", {"Auto-Submitted": "auto-replied"}),
    ("#status resolved", "resolved", {"X-Autoreply": "yes"}),
    ("#status resolved", "resolved", {"Precedence": "auto_reply"}),
])
def test_an_agents_out_of_office_reply_does_not_reopen_a_pending_or_resolved_ticket(
    desk: tuple[Settings, DaemonThread], relay: RelaySink, typed: str, status: str,
    headers: dict[str, str],
) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail())
    note = wait_mails_to(relay, "alice@staff.test", 1)[0]
    _alice(daemon, note, typed)
    wait_ticket(settings, 1, lambda t: t["status"] == status, status)
    sent = _kinds(settings)
    _alice(daemon, note, "I am out of the office until Monday.", headers=headers)
    t = wait_ticket(settings, 1, _auto_replies, "the out-of-office reply stored")
    assert t["status"] == status
    assert "automatic mail from agent alice" in _auto_replies(t)[0]["detail"]
    away = [m for m in t["messages"] if "out of the office" in m["body_text"]]
    # for the agents, never the customer
    assert [(m["direction"], m["visibility"]) for m in away] == [("in", "internal")]
    assert not any(e["kind"] == "reply" for e in t["events"])
    assert _kinds(settings) == sent  # nobody told, nothing to the customer
    assert len(all_tickets(settings)) == 1


def test_a_customers_out_of_office_replies_change_nothing_on_the_ticket(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail())
    note = wait_mails_to(relay, "alice@staff.test", 1)[0]
    ack = wait_mails_to(relay, CAROL, 1)[0]

    # Exchange answers the acknowledgement: not a reply, and not acknowledged either
    _carol_away(daemon, ack, {"Auto-Submitted": "auto-replied",
                              "X-Auto-Response-Suppress": "All"}, envelope_sender="")
    t = wait_ticket(settings, 1, lambda t: len(_auto_replies(t)) == 1, "the first away mail")
    assert t["status"] == "new"
    assert _kinds(settings).count("ack") == 1 and "notify-reply" not in _kinds(settings)

    # vacation(1) answers alice's question: the ticket still waits for carol herself
    _alice(daemon, note, "Hi Carol, please switch it off at the wall.")
    answer = wait_mails_to(relay, CAROL, 2)[1]
    wait_ticket(settings, 1, lambda t: t["status"] == "pending", "pending")
    _carol_away(daemon, answer, {"Precedence": "bulk"})
    t = wait_ticket(settings, 1, lambda t: len(_auto_replies(t)) == 2, "the second away mail")
    assert t["status"] == "pending"
    assert "notify-reply" not in _kinds(settings)

    # carol herself answers: that is a reply
    send(daemon.port, make_mail(to=reply_to(answer), subject="Re: [HD-1] Printer on fire",
                                in_reply_to=f"<{msgid(answer)}>", body="Still smoking."),
         rcpts=[reply_to(answer)])
    wait_ticket(settings, 1, lambda t: t["status"] == "open", "open after carol's reply")
    told = wait_mails_to(relay, "alice@staff.test", 2)[1]
    assert told["Subject"].startswith("Customer replied: [HD-1]")

    # an autoresponder answering the closing notice files it on the closed ticket
    _alice(daemon, told, "#status closed")
    closed = wait_mails_to(relay, CAROL, 3)[2]
    _carol_away(daemon, closed, {"X-Autorespond": "yes"})
    t = wait_ticket(settings, 1, lambda t: len(_auto_replies(t)) == 3, "the third away mail")
    assert t["status"] == "closed"
    assert len(all_tickets(settings)) == 1
    assert [e["new"] for e in t["events"] if e["field"] == "status"] == [
        "open", "pending", "open", "closed"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_auto_reply_is_not_a_customer_reply_for_the_sla_or_the_pending_wait(
    make_settings: MakeSettings,
) -> None:
    settings = with_agents(make_settings({
        "sla": {"high": {"first_response": "1h", "next_response": "2h", "resolution": "8h"}},
        "stale": {"pending_remind": "3d"}}))
    tid = make_ticket(settings, at("2026-11-30T09:00"))
    agent_reply(settings, tid, at("2026-11-30T09:30"))
    set_status(settings, tid, "pending", at("2026-11-30T09:30"))

    clock.freeze(at("2026-12-01T10:00"))
    away = make_mail(subject=f"Automatic reply: [HD-{tid}] Printer on fire",
                     headers={"Auto-Submitted": "auto-replied"}, body="Back on Monday.")
    spool = Spool(settings.data_dir / "spool")
    spool.put(away.as_bytes(), Envelope(route="test", mail_from=CAROL,
                                        rcpt_tos=("support@example.test",)))
    outcomes = run_pipeline(settings, spool)
    assert [(o.kind, o.ticket) for o in outcomes] == [("stored", f"HD-{tid}")]
    assert ticket_row(settings, tid).status == "pending"

    with db.session_scope(engine_for(settings)) as session:
        t = session.get(Ticket, tid)
        assert t is not None
        clocks = sla.clocks(session, sla.SlaContext(settings), t)
    assert "next_response" not in [c.kind for c in clocks]
    # the reminder is due three days after alice's question, not after the away mail
    assert run_pass(settings, at("2026-12-03T09:29")) == []
    assert run_pass(settings, at("2026-12-03T09:30")) == [
        f"HD-{tid} stale:remind:20261130T093000: reminded {CAROL}"]
