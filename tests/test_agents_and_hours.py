"""agents.toml lookups and validation; business-hours parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpdesk.config import agents
from helpdesk.hours import HoursError, parse_hours

REPO = Path(__file__).resolve().parent.parent


def test_the_example_agents_file_loads_with_lookups():
    directory = agents.load(REPO / "config" / "agents.toml")
    assert directory.by_address("ALICE@staff.test").name == "alice"
    assert directory.by_address("omar.k@staff.test").name == "omar"  # an alternate
    assert directory.by_address("nobody@staff.test") is None
    assert directory.team_members("ops") == ("alice", "omar")
    assert directory.team_lead("support").name == "lisa"
    assert directory.team("ops").escalation == "support"
    assert directory.agent("lisa").role == "lead"
    # the name people see: the display name, or the login when the file gives none
    assert directory.agent("alice").shown_name == "Alice Agent"
    assert directory.agent("lisa").shown_name == "lisa"


def test_a_team_named_only_by_agents_exists():
    directory = agents.build({"agent": [{"name": "a", "email": "a@x.test", "teams": ["night"]}]})
    assert directory.team_members("night") == ("a",)
    assert directory.team_lead("night") is None


def test_a_missing_file_is_an_empty_directory(tmp_path: Path):
    assert agents.load(tmp_path / "agents.toml").agents == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[agent]]\nname = "a"\n', "agent 'a': email: is required"),
        ('[[agent]]\nname = "a"\nemail = "a@x.test"\nrole = "boss"\n', "agent 'a': role: 'boss'"),
        ('[[agent]]\nname = "a"\nemail = "a@x.test"\nteam = ["x"]\n', "agent 'a': team: unknown"),
        ('[[agent]]\nemail = "a@x.test"\n', "agent #1: name: is required"),
        (
            '[[agent]]\nname = "a"\nemail = "a@x.test"\n'
            '[[agent]]\nname = "b"\nemail = "A@x.test"\n',
            "agent 'b': email: 'A@x.test' already belongs to 'a'",
        ),
        (
            '[[agent]]\nname = "a"\nemail = "a@x.test"\n'
            '[[agent]]\nname = "a"\nemail = "b@x.test"\n',
            "agent 'a': name: defined twice",
        ),
        ('[[team]]\nname = "t"\nlead = "ghost"\n', "team 't': lead: no agent named 'ghost'"),
        ('[[team]]\nname = "t"\nescalation = "void"\n', "team 't': escalation: no team"),
        ('[[agent]]\nname = "a"\nemail = "a@x.test"\ndisplay_name = "A\\nBcc: x"\n',
         "agent 'a': display_name: must be one line"),
        ("[[agents]]\n", "agents: unknown table"),
        ("[[agent]\n", "not valid TOML"),
    ],
)
def test_agents_errors_name_file_entry_and_field(tmp_path: Path, text: str, expected: str):
    path = tmp_path / "agents.toml"
    path.write_text(text)
    with pytest.raises(agents.AgentsError) as caught:
        agents.load(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_business_hours_with_split_days_and_midnight():
    hours = parse_hours({"week": {"mon": "08:00-12:00, 13:00-24:00"}})
    monday = datetime(2026, 11, 23, tzinfo=UTC)
    assert hours.is_open(monday.replace(hour=9))
    assert not hours.is_open(monday.replace(hour=12, minute=30))
    assert hours.is_open(monday.replace(hour=23, minute=59))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone: unknown time zone"),
        ({"week": {"mon": "18:00-08:00"}}, "week.mon: '18:00-08:00' ends before it starts"),
        ({"week": {"funday": "08:00-09:00"}}, "week.funday: unknown day"),
        ({"holidays": ["next friday"]}, "holidays: 'next friday' is not a date"),
        ({"hours": 3}, "hours: unknown key"),
    ],
)
def test_bad_business_hours_are_refused(spec: dict, expected: str):
    with pytest.raises(HoursError, match=expected):
        parse_hours(spec)
