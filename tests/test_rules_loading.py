"""Loading rules files: the example, errors naming file/line/rule/field, rules.d, reloads."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

import pytest

from helpdesk.config import settings as config
from helpdesk.rules.engine import evaluate
from helpdesk.rules.holder import RulesHolder, watch_rules
from helpdesk.rules.loader import RuleSetError, load_rules
from tests.helpers import wait_until
from tests.rules_mail import ctx, mail, ruleset

REPO = Path(__file__).resolve().parent.parent

HELPDESK_TOML = """
[queue.support]
team = "support"

[queue.billing]
team = "support"
address = "billing@example.test"
"""


def site(tmp_path: Path, rules: str | None = None) -> config.Settings:
    """A config dir with helpdesk.toml and copies of the example rules and agents."""
    (tmp_path / "helpdesk.toml").write_text(HELPDESK_TOML)
    shutil.copy(REPO / "config" / "agents.toml", tmp_path / "agents.toml")
    if rules is None:
        shutil.copy(REPO / "config" / "rules.toml", tmp_path / "rules.toml")
    else:
        (tmp_path / "rules.toml").write_text(rules)
    return config.load(tmp_path / "helpdesk.toml")


def problem(tmp_path: Path, text: str) -> str:
    with pytest.raises(RuleSetError) as caught:
        ruleset(tmp_path, text, queues={"support", "billing"})
    return str(caught.value)


def test_the_example_files_load(tmp_path: Path):
    holder = RulesHolder.from_settings(site(tmp_path))
    names = [r.name for r in holder.current.rules]
    assert "Billing by keyword" in names and "Outage reports" in names
    assert holder.current.directory.team_lead("support").name == "lisa"


def test_a_toml_syntax_error_names_file_and_line(tmp_path: Path):
    message = problem(tmp_path, '[[rule]]\nname = "a"\nset = { priority = "high" \n')
    assert message.startswith(f"{tmp_path / 'rules.toml'}:3: not valid TOML")


def test_an_invalid_regex_names_file_line_rule_and_field(tmp_path: Path):
    text = (
        '[[rule]]\nname = "fine"\ntags = ["x"]\n\n'
        '[[rule]]\nname = "Broken billing"\nwhen.subject = { regex = "(invoice" }\n'
        'set = { category = "billing" }\n'
    )
    message = problem(tmp_path, text)
    assert message.startswith(
        f"{tmp_path / 'rules.toml'}:7: rule 'Broken billing': when.subject.regex: "
        "invalid regular expression '(invoice'"
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            'when.subjct = "x"\ntags = ["a"]',
            "when.subjct: unknown condition (did you mean 'subject'?)",
        ),
        ('set = { priority = "hgih" }', "set.priority: 'hgih' is not one of low, normal, high"),
        ('set = { queue = "sales" }', "set.queue: no queue 'sales' in helpdesk.toml"),
        ('assign = { agent = "zed" }', "assign.agent: no agent 'zed' in agents.toml"),
        ('assign = { team = "nobody" }', "assign.team: no team 'nobody' in agents.toml"),
        ('assign = { team = "ops", strategy = "random" }', "assign.strategy: 'random' is not"),
        ('set = { priority = "high" }\nfinal = ["queue"]', "final: 'queue' is not set by this"),
        ('when.size = { min = "lots" }\ntags = ["a"]', "when.size.min: expected a number"),
        (
            'when.subject = { contains = "a", regex = "b" }\ntags = ["a"]',
            "when.subject: name exactly one matcher",
        ),
        ('when.business_hours = "sometimes"\ntags = ["a"]', 'when.business_hours: must be "in"'),
        ('when.is_reply = "yes"\ntags = ["a"]', "when.is_reply: must be true or false"),
        ('when.subject = "x"', "does nothing"),
        ('stop = true\napply_to = "replies"', "apply_to: 'replies' is not one of"),
        ('priority = "high"', "priority: unknown key"),
    ],
)
def test_validation_errors_name_the_rule_and_field(tmp_path: Path, rule: str, expected: str):
    message = problem(tmp_path, f'[[rule]]\nname = "R"\n{rule}\n')
    assert "rule 'R': " in message
    assert expected in message
    assert message.startswith(f"{tmp_path / 'rules.toml'}:")


def test_error_lines_point_into_the_rule(tmp_path: Path):
    text = (
        '[[rule]]\nname = "A"\ntags = ["a"]\n\n[[rule]]\nname = "B"\n'
        'when.from = "x@y.test"\nset = { priority = "urgent" }\n'
    )
    assert problem(tmp_path, text).startswith(
        f"{tmp_path / 'rules.toml'}:8: rule 'B': set.priority"
    )


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path):
    text = '[[rule]]\nname = "A"\nset = { priority = "x" }\n[[rule]]\nname = "B"\nspam = 1\n'
    assert len(problem(tmp_path, text).splitlines()) == 2


def test_two_rules_with_one_name_are_refused(tmp_path: Path):
    text = '[[rule]]\nname = "A"\ntags = ["a"]\n[[rule]]\nname = "A"\ntags = ["b"]\n'
    assert "rule 'A': name: a rule of this name already exists" in problem(tmp_path, text)


def test_disabled_rules_are_validated_but_not_run(tmp_path: Path):
    rules = ruleset(tmp_path, '[[rule]]\nname = "off"\nenabled = false\ntags = ["x"]\n')
    assert rules.rules == ()


def test_rules_d_files_apply_in_name_order_after_rules_toml(tmp_path: Path):
    (tmp_path / "rules.d").mkdir()
    (tmp_path / "rules.d" / "20-late.toml").write_text(
        '[[rule]]\nname = "late"\nset = { priority = "low" }\n'
    )
    (tmp_path / "rules.d" / "10-early.toml").write_text(
        '[[rule]]\nname = "early"\nset = { priority = "high" }\n'
    )
    (tmp_path / "rules.d" / "notes.txt").write_text("ignored")
    settings = site(tmp_path, rules='[[rule]]\nname = "main"\nset = { priority = "normal" }\n')
    holder = RulesHolder.from_settings(settings)
    assert [r.name for r in holder.current.rules] == ["main", "early", "late"]
    assert evaluate(holder.current, ctx()).priority == "low"


def test_no_rules_files_means_no_rules(tmp_path: Path):
    assert load_rules([]).rules == ()


def test_a_bad_reload_keeps_the_old_rules_and_reports_the_problem(tmp_path: Path):
    settings = site(tmp_path)
    holder = RulesHolder.from_settings(settings)
    before = holder.current
    (tmp_path / "rules.toml").write_text(
        '[[rule]]\nname = "Typo"\nwhen.subject = { regex = "([a-z]" }\ntags = ["x"]\n'
    )
    error = holder.reload()
    assert error is not None
    assert f"{tmp_path / 'rules.toml'}:3: rule 'Typo': when.subject.regex" in str(error)
    assert holder.current is before
    assert evaluate(holder.current, ctx(mail(subject="Invoice"))).category == "billing"


def test_a_bad_agents_file_is_refused_too(tmp_path: Path):
    holder = RulesHolder.from_settings(site(tmp_path))
    (tmp_path / "agents.toml").write_text('[[agent]]\nname = "x"\nemail = "not-an-address"\n')
    error = holder.reload()
    assert error is not None and "agent 'x': email: 'not-an-address'" in str(error)


async def wait_for(condition) -> None:
    """wait_until off the event loop, which keeps running the watcher meanwhile."""
    await asyncio.to_thread(wait_until, condition, what="the watcher")


async def test_the_watcher_loads_a_good_edit_and_keeps_rules_on_a_bad_one(tmp_path: Path):
    holder = RulesHolder.from_settings(site(tmp_path))
    errors = []
    stop = asyncio.Event()
    task = asyncio.create_task(
        watch_rules(holder, on_error=errors.append, stop_event=stop, debounce_ms=50)
    )
    try:
        await asyncio.sleep(0.5)  # let the watcher register
        (tmp_path / "rules.toml").write_text(
            '[[rule]]\nname = "Everything is urgent"\nset = { priority = "critical" }\n'
        )
        await wait_for(lambda: holder.current.rule("Everything is urgent") is not None)
        assert evaluate(holder.current, ctx()).priority == "critical"

        (tmp_path / "rules.toml").write_text('[[rule]]\nname = "Bad"\nset = { priority = 3 }\n')
        await wait_for(lambda: bool(errors))
        assert "rule 'Bad': set.priority" in str(errors[0])
        assert holder.current.rule("Everything is urgent") is not None
    finally:
        stop.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, 5)
        task.cancel()


def test_every_problem_inside_one_rule_is_reported_with_its_own_line(tmp_path: Path):
    text = (
        '[[rule]]\nname = "R"\n'
        'when.any = [ { subject = { regex = "(" } }, { sizes = 3 } ]\n'
        'when.header."X-A" = { regex = "[" }\n'
        'when.header."X-B" = { glob = 5 }\n'
        'set = { priority = "x", colour = "red" }\n'
        'final = ["priority"]\n'
    )
    lines = problem(tmp_path, text).splitlines()
    assert [line.split(": ", 2)[1:] for line in lines] == [
        ["rule 'R'", "when.any.0.subject.regex: invalid regular expression '(': missing ) "
         "at position 1"],
        ["rule 'R'", "when.any.1.sizes: unknown condition (did you mean 'size'?)"],
        ["rule 'R'", "when.header.X-A.regex: invalid regular expression '[': unterminated "
         "character set at position 1"],
        ["rule 'R'", "when.header.X-B.glob: expected a string or a list of strings, got 5"],
        ["rule 'R'", "set.priority: 'x' is not one of low, normal, high, critical"],
        ["rule 'R'", "set.colour: cannot set this (use category, priority, queue, tags)"],
    ]
    assert [int(line.split(":")[1]) for line in lines] == [3, 3, 4, 5, 6, 6]
