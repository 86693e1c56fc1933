"""`helpdesk stats` against a fixture whose figures are known."""

from __future__ import annotations

from helpdesk.store import db
from helpdesk.store.models import Ticket
from helpdesk.store.sched_models import Survey
from tests.conftest import MakeSettings
from tests.helpers import cli_json, engine_for, run_cli
from tests.sched import agent_reply, at, make_ticket, run_pass, set_status, with_agents


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
