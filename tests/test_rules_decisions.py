"""Actions, precedence, final, stop, spam, follow-ups, routing and assignment strategies."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from helpdesk.rules import AssignRequest, RuleHit
from helpdesk.rules.actions import ACTIONS, register_action
from helpdesk.rules.assign import pick, pick_least_loaded, pick_round_robin
from helpdesk.rules.conditions import CONDITIONS, register_condition
from helpdesk.rules.engine import ROUTING, evaluate, explain
from tests.rules_mail import ISSUE_EXAMPLE, ctx, mail, ruleset


def test_billing_mail_gets_category_and_queue_with_hits(tmp_path: Path):
    decision = evaluate(ruleset(tmp_path, ISSUE_EXAMPLE), ctx(mail(subject="Refund please")))
    assert (decision.category, decision.queue, decision.priority) == ("billing", "billing", "")
    assert decision.hits == (
        RuleHit("Billing by keyword", "category", "billing"),
        RuleHit("Billing by keyword", "queue", "billing"),
    )
    assert decision.matched == ("Billing by keyword",)


def test_vip_outage_is_critical_and_goes_round_robin_to_ops(tmp_path: Path):
    rules = ruleset(tmp_path, ISSUE_EXAMPLE)
    decision = evaluate(rules, ctx(mail(sender="ceo@bigcorp.test", subject="Site down")))
    assert decision.priority == "critical"
    assert decision.category == "incident"
    assert decision.assign == AssignRequest(
        team="ops", strategy="round_robin", members=("alice", "bob", "carol", "dave")
    )


def test_a_later_rule_overrides_an_earlier_one_field_by_field(tmp_path: Path):
    rules = ruleset(
        tmp_path,
        '[[rule]]\nname = "first"\nset = { priority = "low", category = "general" }\n'
        '[[rule]]\nname = "second"\nset = { priority = "high" }\n',
    )
    decision = evaluate(rules, ctx())
    assert (decision.priority, decision.category) == ("high", "general")
    assert RuleHit("second", "priority", "high") in decision.hits


def test_a_final_field_cannot_be_changed_by_later_rules(tmp_path: Path):
    text = ISSUE_EXAMPLE.replace(
        '[[rule]]\nname = "Newsletters"',
        (
            '[[rule]]\nname = "Downgrade"\nset = { priority = "low", category = "misc" }\n\n'
            '[[rule]]\nname = "Newsletters"'
        ),
    )
    rules = ruleset(tmp_path, text)
    result = explain(rules, ctx(mail(subject="Server down")))
    assert result.decision.priority == "critical"  # final by "Outage reports"
    assert result.decision.category == "misc"  # not final: overridden
    downgrade = next(t for t in result.rules if t.name == "Downgrade")
    assert "priority not changed: made final by rule 'Outage reports'" in downgrade.reason


def test_final_true_freezes_every_field_the_rule_sets(tmp_path: Path):
    rules = ruleset(
        tmp_path,
        '[[rule]]\nname = "a"\nset = { queue = "billing" }\nack = false\nfinal = true\n'
        '[[rule]]\nname = "b"\nset = { queue = "support" }\nack = "other"\n',
    )
    decision = evaluate(rules, ctx())
    assert (decision.queue, decision.ack_template) == ("billing", "")


def test_stop_ends_evaluation_and_newsletters_are_spam(tmp_path: Path):
    text = ISSUE_EXAMPLE + '\n[[rule]]\nname = "After"\ntags = ["late"]\n'
    result = explain(ruleset(tmp_path, text), ctx(mail(headers={"List-Id": "<l.shop.test>"})))
    assert result.decision.spam is True
    assert result.decision.stopped_by == "Newsletters"
    assert result.decision.tags == ()
    assert result.rules[-1].reason == "not evaluated: rule 'Newsletters' said stop"


def test_a_stop_rule_without_actions_only_stops(tmp_path: Path):
    rules = ruleset(
        tmp_path, '[[rule]]\nname = "halt"\nstop = true\n[[rule]]\nname = "never"\ntags = ["x"]\n'
    )
    assert evaluate(rules, ctx()).tags == ()


def test_tags_accumulate_across_rules_without_duplicates(tmp_path: Path):
    rules = ruleset(
        tmp_path,
        '[[rule]]\nname = "a"\ntags = ["vip", "billing"]\n'
        '[[rule]]\nname = "b"\ntags = "vip"\nset = { tags = ["eu"] }\n',
    )
    assert evaluate(rules, ctx()).tags == ("vip", "billing", "eu")


@pytest.mark.parametrize(
    ("ack", "template"), [('"ack-vip"', "ack-vip"), ("false", ""), ("true", None)]
)
def test_ack_chooses_the_template_or_none(tmp_path: Path, ack: str, template: str | None):
    rules = ruleset(tmp_path, f'[[rule]]\nname = "a"\nack = {ack}\n')
    assert evaluate(rules, ctx()).ack_template == template


def test_without_rules_the_default_acknowledgement_is_sent(tmp_path: Path):
    assert evaluate(ruleset(tmp_path, ""), ctx()).ack_template is None


def test_assign_to_an_agent_by_name_or_address(tmp_path: Path):
    rules = ruleset(tmp_path, '[[rule]]\nname = "a"\nassign = { agent = "BOB@staff.test" }\n')
    decision = evaluate(rules, ctx())
    assert decision.assign == AssignRequest(agent="bob")
    assert decision.hits == (RuleHit("a", "assign", "bob"),)


def test_rules_apply_to_new_tickets_only_unless_they_ask(tmp_path: Path):
    rules = ruleset(
        tmp_path,
        '[[rule]]\nname = "new only"\ntags = ["new"]\n'
        '[[rule]]\nname = "always"\ntags = ["all"]\napply_to = "all"\n'
        '[[rule]]\nname = "replies"\ntags = ["reply"]\napply_to = "followups"\n',
    )
    assert evaluate(rules, ctx()).tags == ("new", "all")
    follow_up = explain(rules, ctx(is_reply=True, routed_queue="billing"))
    assert follow_up.decision.tags == ("all", "reply")
    assert follow_up.decision.queue == ""  # a follow-up keeps its ticket's queue
    assert follow_up.rules[0].reason == "skipped: applies to new tickets only"


def test_routed_queue_is_used_and_recorded_unless_a_rule_overrides(tmp_path: Path):
    rules = ruleset(
        tmp_path,
        '[[rule]]\nname = "billing words"\n'
        'when.subject = { contains = "invoice" }\nset = { queue = "billing" }\n',
    )
    routed = evaluate(rules, ctx(routed_queue="sales"))
    assert routed.queue == "sales"
    assert routed.hits == (RuleHit(ROUTING, "queue", "sales"),)
    assert evaluate(rules, ctx(mail(subject="invoice"), routed_queue="sales")).queue == "billing"
    assert evaluate(rules, ctx()).queue == "support"  # the default queue


def test_round_robin_is_fair_over_100_tickets(tmp_path: Path):
    rules = ruleset(tmp_path, '[[rule]]\nname = "ops"\nassign = { team = "ops" }\n')
    last: str | None = None
    counts: Counter[str] = Counter()
    order = []
    for _ in range(100):
        request = evaluate(rules, ctx()).assign
        assert request is not None
        last = pick(request.strategy, request.members, last_assigned=last)
        counts[last] += 1
        order.append(last)
    assert counts == {"alice": 25, "bob": 25, "carol": 25, "dave": 25}
    assert order[:5] == ["alice", "bob", "carol", "dave", "alice"]


def test_round_robin_restarts_when_the_last_assignee_left_the_team():
    assert pick_round_robin(["a", "b"], "gone") == "a"
    assert pick_round_robin(["a", "b"], None) == "a"
    assert pick_round_robin(["a", "b"], "b") == "a"


def test_least_loaded_picks_the_member_with_fewest_open_tickets(tmp_path: Path):
    rules = ruleset(
        tmp_path, '[[rule]]\nname = "s"\nassign = { team = "support", strategy = "least_loaded" }\n'
    )
    request = evaluate(rules, ctx()).assign
    assert request is not None and request.strategy == "least_loaded"
    open_counts = {"alice": 4, "bob": 2, "carol": 7, "dave": 2, "lisa": 3}
    assert pick("least_loaded", request.members, open_counts=open_counts) == "bob"  # tie: first
    assert pick_least_loaded(["a", "b"], {"a": 1}) == "b"  # no open tickets at all


def test_least_loaded_spreads_a_burst_evenly():
    members = ["a", "b", "c"]
    counts = {"a": 5, "b": 0, "c": 2}
    for _ in range(9):
        chosen = pick_least_loaded(members, counts)
        counts[chosen] += 1
    assert counts == {"a": 6, "b": 5, "c": 5}


def test_an_empty_team_or_unknown_strategy_is_refused():
    with pytest.raises(ValueError):
        pick_round_robin([], None)
    with pytest.raises(ValueError):
        pick("random", ["a"])


def test_registering_an_action_or_condition_twice_is_an_error():
    with pytest.raises(RuntimeError, match="registered twice"):
        register_action(ACTIONS["set"])
    with pytest.raises(RuntimeError, match="registered twice"):
        register_condition("subject", CONDITIONS["subject"])
