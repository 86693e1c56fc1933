"""`helpdesk stats` against a fixture whose figures are known."""

from __future__ import annotations

from typing import Any

import pytest

from helpdesk.config.settings import Settings
from helpdesk.store import db
from helpdesk.store.models import Survey, Ticket
from tests import agent_mails
from tests.agent_desk import msgid, reply_to, wait_mails_to
from tests.conftest import MakeSettings
from tests.helpers import (
    DaemonThread,
    RelaySink,
    cli_json,
    engine_for,
    free_port,
    make_mail,
    run_cli,
    send,
    wait_ticket,
    wait_until,
)
from tests.sched import agent_reply, at, make_ticket, run_pass, set_status, with_agents

CAROL = "carol@customer.test"


def test_stats_figures_from_a_known_fixture(make_settings: MakeSettings):
    settings = with_agents(make_settings({"sla": {"critical": {"first_response": "1h"}}}))
    start = at("2026-11-30T09:00")
    plan = [("alice", "09:30", "11:00"), ("omar", "10:00", "13:00"), ("alice", "11:00", None)]
    ids = []
    for agent, first, resolved in plan:
        tid = make_ticket(settings, start, priority="normal", assignee=agent)
        agent_reply(settings, tid, at(f"2026-11-30T{first}"))
        set_status(settings, tid, "open", at(f"2026-11-30T{first}"))
        if resolved:
            set_status(settings, tid, "resolved", at(f"2026-11-30T{resolved}"))
        ids.append(tid)
    late = make_ticket(settings, start, priority="critical", queue="billing")
    run_pass(settings, at("2026-11-30T10:30"))  # breaches the critical ticket's 1h
    with db.session_scope(engine_for(settings)) as s:
        for tid, score in ((ids[0], 5), (ids[1], 2)):
            t = s.get(Ticket, tid)
            s.add(Survey(ticket_id=tid, contact="carol@customer.test", agent=t.assignee,
                         queue=t.queue, sent_at=at("2026-12-01T10:00"), score=score,
                         good=score >= 4, rated_at=at("2026-12-01T11:00"), rated_via="web"))

    data = cli_json(settings, "stats", "--since", "2026-11-01")
    assert data["backlog"]["total"] == 2
    assert data["backlog"]["by_status"] == {"open": 1, "new": 1}
    assert data["backlog"]["by_queue"] == {"support": 1, "billing": 1}
    assert data["first_response"] == {"count": 3, "median_s": 3600.0, "p90_s": 7200.0}
    assert data["resolution"] == {"count": 2, "median_s": 10800.0, "p90_s": 14400.0}
    assert data["sla_breaches"]["total"] == 1
    assert data["sla_breaches"]["by_sla"] == {"first_response": 1}
    assert data["satisfaction"] == {"count": 2, "good_share": 0.5, "mean": 3.5}
    alice = data["agents"]["alice"]
    assert (alice["open"], alice["resolved"], alice["sla_breaches"]) == (2, 1, 1)
    assert alice["first_response"]["median_s"] == 4500.0  # 30 min and 2 h
    assert alice["satisfaction"] == {"count": 1, "good_share": 1.0, "mean": 5.0}
    assert data["agents"]["omar"]["satisfaction"]["good_share"] == 0.0
    assert late

    human = run_cli(settings, "stats", "--since", "2026-11-01").stdout.decode()
    assert "SLA breaches: 1" in human and "50% good" in human


def _review_desk() -> dict[str, Any]:
    """A review queue, and surveys sent as soon as the scheduler sees the ticket closed."""
    port = free_port()
    return {"queue": {"support": {"team": "support", "review": True}},
            "scheduler": {"interval": "1s"},
            "http": {"public": f"127.0.0.1:{port}"},
            "survey": {"enabled": True, "delay": "0s"}}


def _agent_writes(daemon: DaemonThread, agent: str, typed: str, original: Any) -> None:
    to = reply_to(original)
    send(daemon.port, agent_mails.gmail(typed=typed, sender=f"{agent}@staff.test", to=to,
                                        original=original),
         sender=f"{agent}@staff.test", rcpts=[to])


@pytest.mark.parametrize("desk", [_review_desk()], indirect=True)
def test_stats_credit_the_agent_who_wrote_and_resolved_not_the_approving_lead(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail())
    _agent_writes(daemon, "lisa", "#assign me", wait_mails_to(relay, "lisa@staff.test", 1)[0])
    wait_ticket(settings, 1, lambda t: t["assignee"] == "lisa", "lisa assigned")

    # alice answers first and resolves; lisa, the lead, only approves
    note = wait_mails_to(relay, "alice@staff.test", 1)[0]
    _agent_writes(daemon, "alice", "Hi Carol,\n\nplease switch it off at the wall.", note)
    wait_mails_to(relay, CAROL, 2)
    _agent_writes(daemon, "alice", "#status resolved\n\nThe fuser was replaced.", note)
    _agent_writes(daemon, "lisa", "#approve", wait_mails_to(relay, "lisa@staff.test", 2)[1])
    approved = wait_mails_to(relay, "alice@staff.test", 2)[1]
    _agent_writes(daemon, "alice", "#close", approved)
    wait_ticket(settings, 1, lambda t: t["status"] == "closed", "closed")

    # carol rates the ticket by answering the survey
    survey = wait_until(lambda: [m for m in wait_mails_to(relay, CAROL, 3)
                                 if "How did we do" in str(m["Subject"])], 20.0,
                        what="the survey")[0]
    send(daemon.port, make_mail(to=reply_to(survey), subject=f"Re: {survey['Subject']}",
                                in_reply_to=f"<{msgid(survey)}>", body="5 thank you"),
         rcpts=[reply_to(survey)])
    wait_ticket(settings, 1, lambda t: any(e["kind"] == "rating" for e in t["events"]),
                "the rating")

    agents = cli_json(settings, "stats", "--since", "2000-01-01")["agents"]
    alice = agents["alice"]
    assert alice["first_response"]["count"] == 1
    assert alice["resolved"] == 1
    assert alice["satisfaction"] == {"count": 1, "good_share": 1.0, "mean": 5.0}
    lisa = agents.get("lisa", {"resolved": 0, "first_response": {"count": 0},
                               "satisfaction": {"count": 0}})
    assert (lisa["resolved"], lisa["first_response"]["count"],
            lisa["satisfaction"]["count"]) == (0, 0, 0)
