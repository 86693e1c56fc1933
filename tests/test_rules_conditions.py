"""Every condition and matcher, and their combinations, against mails built in the test."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpdesk.hours import parse_hours
from helpdesk.rules import MailContext
from helpdesk.rules.engine import evaluate, explain
from helpdesk.rules.matchers import compile_matcher
from tests.rules_mail import ctx, mail, ruleset

PDF = ("report.pdf", "application/pdf", b"%PDF-1.4 fake")


def matches(tmp_path: Path, when: str, context: MailContext, **kwargs: object) -> bool:
    rules = ruleset(tmp_path, f'[[rule]]\nname = "probe"\n{when}\ntags = ["hit"]\n', **kwargs)
    return "hit" in evaluate(rules, context).tags


CASES = [
    # (condition as written in rules.toml, the mail, expected)
    ('when.from = "kim@example.org"', ctx(), True),
    ('when.from = "KIM@Example.ORG"', ctx(), True),
    ('when.from = "other@example.org"', ctx(), False),
    ('when.from = ["x@y.test", "kim@example.org"]', ctx(), True),
    ('when.from = { glob = "*@example.org" }', ctx(), True),
    ('when.from = { equals = "KIM@example.org", case_sensitive = true }', ctx(), False),
    ('when.from_domain = "example.org"', ctx(), True),
    ('when.from_domain = "bigcorp.test"', ctx(), False),
    (
        'when.from_domain = { glob = ["*.bigcorp.test", "bigcorp.test"] }',
        ctx(mail(sender="a@eu.bigcorp.test")),
        True,
    ),
    ('when.from_name = { contains = "kim" }', ctx(), True),
    ('when.to = "billing@example.test"', ctx(mail(to="Billing <billing@example.test>")), True),
    ('when.to = "billing@example.test"', ctx(), False),
    ('when.cc = { contains = "@partner.test" }', ctx(mail(cc="p@partner.test")), True),
    ("when.cc = { exists = false }", ctx(), True),
    (
        'when.delivered_to = "sales@example.test"',
        ctx(mail(headers={"Delivered-To": "sales@example.test"})),
        True,
    ),
    ('when.recipient = "sales@example.test"', ctx(rcpt=("sales@example.test",)), True),
    ('when.recipient = "sales@example.test"', ctx(mail(cc="sales@example.test")), True),
    ('when.recipient = "sales@example.test"', ctx(), False),
    ('when.mailbox = "billing"', ctx(route="imap:billing"), True),
    ('when.mailbox = "billing@example.test"', ctx(rcpt=("billing@example.test",)), True),
    ('when.mailbox = "billing"', ctx(route="smtp"), False),
    ('when.route = { glob = "imap:*" }', ctx(route="imap:sales"), True),
    ('when.subject = { contains = "REFUND" }', ctx(mail(subject="Please refund me")), True),
    (
        'when.subject = { regex = "(?i)invoice|refund|billing" }',
        ctx(mail(subject="Invoice 12")),
        True,
    ),
    ('when.subject = { regex = "order\\\\s*#?\\\\d+" }', ctx(mail(subject="Order #123")), True),
    ('when.subject = { regex = "order\\\\s*#?\\\\d+" }', ctx(mail(subject="Order pending")), False),
    ('when.subject = { regex = "^Re:", case_sensitive = true }', ctx(mail(subject="RE: x")), False),
    ('when.subject = "hello"', ctx(), True),
    (
        'when.body = { regex = "(?i)outage|not reachable" }',
        ctx(mail(body="The portal is not reachable since 9:00")),
        True,
    ),
    ('when.body = { contains = ["crash", "broken"] }', ctx(), False),
    (
        'when.header."List-Id" = { exists = true }',
        ctx(mail(headers={"List-Id": "<news.shop.test>"})),
        True,
    ),
    ('when.header."List-Id" = { exists = true }', ctx(), False),
    ('when.header."X-Priority" = "1"', ctx(mail(headers={"X-Priority": "1"})), True),
    ('when.header.precedence = ["bulk", "list"]', ctx(mail(headers={"Precedence": "Bulk"})), True),
    ("when.has_attachment = true", ctx(mail(attachments=(PDF,))), True),
    ("when.has_attachment = true", ctx(), False),
    ("when.has_attachment = false", ctx(), True),
    ('when.attachment_type = "application/pdf"', ctx(mail(attachments=(PDF,))), True),
    ('when.attachment_type = { glob = "image/*" }', ctx(mail(attachments=(PDF,))), False),
    ('when.attachment_name = { glob = "*.PDF" }', ctx(mail(attachments=(PDF,))), True),
    ("when.size = { min = 100 }", ctx(), True),
    ('when.size = { gt = "1MB" }', ctx(), False),
    ('when.size = { max = "1k" }', ctx(), True),
    ("when.is_reply = true", ctx(is_reply=True), True),
    ("when.is_reply = false", ctx(), True),
    ("when.previous_tickets = 0", ctx(), True),
    ("when.previous_tickets = { min = 3 }", ctx(previous_tickets=3), True),
    ("when.previous_tickets = { gt = 3 }", ctx(previous_tickets=3), False),
    ("when.previous_tickets = { lt = 2, min = 1 }", ctx(previous_tickets=1), True),
]


@pytest.mark.parametrize(("when", "context", "expected"), CASES)
def test_condition_on_a_mail(tmp_path: Path, when: str, context: MailContext, expected: bool):
    rules_text = when if "is_reply = true" not in when else when + '\napply_to = "all"'
    assert matches(tmp_path, rules_text, context) is expected


def test_all_any_and_not_combine(tmp_path: Path):
    when = (
        'when.all = [ { from_domain = "bigcorp.test" },\n'
        '  { any = [ { subject = { contains = "urgent" } }, { body = { contains = "asap" } } ] },\n'
        '  { not = { subject = { contains = "newsletter" } } } ]'
    )
    hit = ctx(mail(sender="a@bigcorp.test", body="please fix asap"))
    assert matches(tmp_path, when, hit)
    assert not matches(tmp_path, when, ctx(mail(sender="a@bigcorp.test", body="whenever")))
    newsletter = ctx(mail(sender="a@bigcorp.test", subject="urgent newsletter"))
    assert not matches(tmp_path, when, newsletter)


def test_several_keys_under_when_must_all_hold(tmp_path: Path):
    when = 'when.from_domain = "example.org"\nwhen.subject = { contains = "invoice" }'
    assert matches(tmp_path, when, ctx(mail(subject="invoice 3")))
    assert not matches(tmp_path, when, ctx(mail(subject="hello")))


def test_a_rule_without_conditions_matches_every_mail(tmp_path: Path):
    assert matches(tmp_path, "", ctx())


BERLIN_HOURS = {
    "timezone": "Europe/Berlin",
    "week": {"mon": "08:00-18:00", "fri": "08:00-16:00"},
    "holidays": ["2026-12-25"],
}


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (datetime(2026, 11, 23, 9, 0, tzinfo=UTC), True),  # Monday 10:00 in Berlin
        (datetime(2026, 11, 23, 17, 30, tzinfo=UTC), False),  # Monday 18:30 in Berlin
        (datetime(2026, 11, 24, 9, 0, tzinfo=UTC), False),  # Tuesday: closed
        (datetime(2026, 12, 25, 9, 0, tzinfo=UTC), False),  # a Friday, but a holiday
    ],
)
def test_business_hours_in_and_out(tmp_path: Path, moment: datetime, inside: bool):
    hours = parse_hours(BERLIN_HOURS)
    context = ctx(arrived_at=moment)
    assert matches(tmp_path, 'when.business_hours = "in"', context, hours=hours) is inside
    assert matches(tmp_path, 'when.business_hours = "out"', context, hours=hours) is not inside


def test_business_hours_of_the_routed_queue_win_over_the_default(tmp_path: Path):
    always_closed = parse_hours({"timezone": "UTC", "week": {}})
    monday = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    kwargs = {"hours": parse_hours(BERLIN_HOURS), "queue_hours": {"billing": always_closed}}
    billing = ctx(arrived_at=monday, routed_queue="billing")
    assert matches(tmp_path, 'when.business_hours = "out"', billing, **kwargs)
    assert not matches(tmp_path, 'when.business_hours = "out"', ctx(arrived_at=monday), **kwargs)


def test_without_business_hours_every_time_is_inside(tmp_path: Path):
    assert matches(tmp_path, 'when.business_hours = "in"', ctx())


def test_explain_names_the_condition_that_failed(tmp_path: Path):
    rules = ruleset(
        tmp_path,
        '[[rule]]\nname = "VIP billing"\nwhen.subject = { contains = "invoice" }\n'
        'when.from_domain = "bigcorp.test"\ntags = ["x"]\n',
    )
    trace = explain(rules, ctx(mail(subject="my invoice"))).rules[0]
    assert not trace.matched
    assert trace.reason == "from_domain 'example.org' is not 'bigcorp.test'"


def test_explain_says_which_alternative_matched(tmp_path: Path):
    rules = ruleset(
        tmp_path,
        '[[rule]]\nname = "Outage"\nwhen.any = [ { subject = { contains = "down" } },'
        ' { body = { regex = "(?i)outage" } } ]\ntags = ["x"]\n',
    )
    trace = explain(rules, ctx(mail(body="Big OUTAGE here"))).rules[0]
    assert trace.matched
    assert "matches regex '(?i)outage'" in trace.reason


def test_a_pathological_regex_times_out_as_no_match(tmp_path: Path, caplog):
    rules = ruleset(
        tmp_path, '[[rule]]\nname = "evil"\nwhen.body = { regex = "(x|xx)+y" }\ntags = ["x"]\n'
    )
    started = datetime.now(UTC)
    decision = evaluate(rules, ctx(mail(body="y " + "x" * 5000)))
    assert decision.tags == ()
    assert (datetime.now(UTC) - started).total_seconds() < 2
    assert "timed out" in caplog.text


LETTERS = "abcxyz #1."


@settings(max_examples=300, deadline=None)
@given(
    pattern=st.sampled_from(
        [
            "abc|xyz",
            "a(b|c)x",
            r"ab\s*#?\d+",
            "(?i)AB|cx",
            "x(yz)+a",
            "(ab)?c",
            "a.b",
            r"\bxyz\b",
            "zz|a(bc|x)",
            "(?:ab){2}",
        ]
    ),
    text=st.text(alphabet=LETTERS, max_size=30),
    case=st.booleans(),
)
def test_the_literal_prefilter_never_changes_the_answer(pattern: str, text: str, case: bool):
    matcher = compile_matcher({"regex": pattern, "case_sensitive": case}, ("when", "subject"))
    expected = matcher.compiled.search(text) is not None
    assert matcher.test((text,), (text.casefold(),)) is expected
