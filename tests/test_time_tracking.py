"""Time tracking: `#time 25m` on an agent's reply or note by mail (through the real
daemon), on the shell's reply and note (`--time`), totals per ticket, agent and queue in
`helpdesk stats` (text and JSON) and every entry as CSV (`--time-csv`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from helpdesk.agents.ops_work import minutes
from helpdesk.config.settings import Settings
from tests import agent_mails
from tests.agent_desk import body, reply_to, wait_mails_to
from tests.helpers import (
    DaemonThread,
    RelaySink,
    invoke_cli,
    make_mail,
    run_cli,
    send,
    ticket,
    wait_ticket,
)


def _alice(daemon: DaemonThread, note: EmailMessage, typed: str) -> None:
    to = reply_to(note)
    raw = agent_mails.thunderbird(typed=typed, sender="Alice <alice@staff.test>", to=to,
                                  original=note)
    send(daemon.port, raw, sender="alice@staff.test", rcpts=[to])


def _times(t: dict) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(e["actor"], e["new"]) for e in t["events"] if e["kind"] == "time"]


def test_time_given_on_a_reply_and_a_note_by_mail_is_recorded_and_a_bad_one_refused(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail())
    note = wait_mails_to(relay, "alice@staff.test", 1)[0]
    _alice(daemon, note, "#time 25m\n\nHi Carol, switch it off please.")
    answer = wait_mails_to(relay, "carol@customer.test", 2)[1]
    assert "switch it off" in body(answer) and "#time" not in body(answer)
    _alice(daemon, note, "#note\n#time 1h30m\n\nCalled the vendor.")
    wait_ticket(settings, 1, lambda t: len(_times(t)) == 2, what="two times")
    _alice(daemon, note, "#time soon\n#priority high")
    refusal = wait_mails_to(relay, "alice@staff.test", 2)[1]
    assert "#time soon: not a time: write it like 25m, 1h30m or 2h" in body(refusal)
    t = ticket(settings, 1)
    assert _times(t) == [("alice", "25 min"), ("alice", "90 min")]
    assert t["priority"] == "normal"


def test_durations() -> None:
    assert [minutes(t) for t in ("25m", "1h30m", "2h", "1h 5min", "45", "90M")] == [
        25, 90, 120, 65, 45, 90]
    assert [minutes(t) for t in ("", "soon", "1.5h", "h", "m", "-5m")] == [None] * 6


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_stats_total_time_per_ticket_agent_and_queue_and_export_it_as_csv(
    desk_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    settings = desk_settings()
    for i, subject in enumerate(("Printer on fire", "Invoice wrong")):
        (tmp_path / f"{i}.eml").write_bytes(make_mail(subject=subject).as_bytes())
    assert run_cli(settings, "ingest", str(tmp_path / "0.eml"),
                   str(tmp_path / "1.eml")).returncode == 0
    cli = [("reply", "HD-1", "alice", "25m"), ("note", "HD-1", "bob", "1h"),
           ("note", "HD-2", "alice", "10m")]
    for what, number, agent, spent in cli:
        done = invoke_cli(settings, "tickets", what, number, "--as", agent, "-m", "text",
                          "--time", spent)
        assert done.exit_code == 0, done.output
    bad = invoke_cli(settings, "tickets", "note", "HD-1", "--as", "bob", "-m", "x",
                     "--time", "25h")
    assert bad.exit_code == 1 and "between 1 minute and 24 hours" in bad.output

    text = invoke_cli(settings, "stats")
    assert "time spent: 1h35m in 3 entries" in text.stdout
    assert "by agent   bob 1h00m, alice 35m" in text.stdout
    assert "by ticket  HD-1 1h25m, HD-2 10m" in text.stdout
    data = json.loads(invoke_cli(settings, "stats", "--json").stdout)["time"]
    assert data["by_ticket"] == {"1": 85, "2": 10}
    assert data["by_queue"] == {"support": 95}
    rows = list(csv.reader(io.StringIO(invoke_cli(settings, "stats", "--time-csv").stdout)))
    assert rows[0] == ["at", "ticket", "queue", "agent", "minutes"]
    assert [r[1:] for r in rows[1:]] == [["HD-1", "support", "alice", "25"],
                                         ["HD-1", "support", "bob", "60"],
                                         ["HD-2", "support", "alice", "10"]]
