"""Run a RuleSet over one mail: MailContext -> Decision, optionally with reasons.

Rules run in file order. A rule that matches applies its actions; a later rule
overrides an earlier one field by field, except fields an earlier rule listed in
`final`. `stop = true` ends evaluation. Rules apply to new tickets unless they
say `apply_to = "followups"` or `"all"`. No store; the only I/O is a log line for
a rule whose regex ran out of the mail's time budget (such a rule is not applied,
whatever its other conditions say, and the Decision lists it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from helpdesk.rules import AssignRequest, Decision, MailContext, RuleHit, RuleTimeout
from helpdesk.rules.actions import Outcome
from helpdesk.rules.facts import Facts
from helpdesk.rules.matchers import Budget
from helpdesk.rules.model import Rule, RuleSet

log = logging.getLogger(__name__)

ROUTING = "(routing)"  # the `rule` of a hit for the queue chosen by address or mailbox


@dataclass(frozen=True)
class RuleTrace:
    """One rule's part in an explained evaluation."""

    name: str
    matched: bool
    reason: str
    set: tuple[RuleHit, ...] = ()
    timed_out: bool = False


@dataclass(frozen=True)
class Explanation:
    decision: Decision
    rules: tuple[RuleTrace, ...]


def evaluate(ruleset: RuleSet, ctx: MailContext) -> Decision:
    """The decision for one mail; the fast path, without reasons."""
    budget = Budget(ruleset.time_budget)
    facts = Facts(ctx, ruleset.hours_for(ctx.routed_queue or ctx.default_queue), budget)
    out = Outcome()
    matched: list[str] = []
    timeouts: list[RuleTimeout] = []
    for test, rule in ruleset.for_followups if ctx.is_reply else ruleset.for_new:
        if test is not None:
            seen = len(budget.timeouts)
            ok = test(facts)
            if len(budget.timeouts) > seen:
                timeouts.append(_timed_out(rule, budget, seen, ctx))
                continue
            if not ok:
                continue
        _apply(rule, out)
        matched.append(rule.name)
        if rule.stop:
            return _decision(out, ctx, tuple(matched), rule.name, timeouts)
    return _decision(out, ctx, tuple(matched), "", timeouts)


def explain(ruleset: RuleSet, ctx: MailContext) -> Explanation:
    """The same decision, plus for every rule whether it matched and why (slower)."""
    traces: list[RuleTrace] = []
    decision = _run(ruleset, ctx, traces)
    return Explanation(decision, tuple(traces))


def _run(ruleset: RuleSet, ctx: MailContext, traces: list[RuleTrace]) -> Decision:
    budget = Budget(ruleset.time_budget)
    facts = Facts(ctx, ruleset.hours_for(ctx.routed_queue or ctx.default_queue), budget)
    out = Outcome()
    matched: list[str] = []
    timeouts: list[RuleTimeout] = []
    stopped = ""
    for rule in ruleset.rules:
        if stopped or not rule.applies(ctx.is_reply):
            traces.append(RuleTrace(rule.name, False, _skip_reason(rule, stopped)))
            continue
        seen = len(budget.timeouts)
        ok, reason = rule.when.why(facts) if rule.when is not None else (True, "always")
        if len(budget.timeouts) > seen:
            timeouts.append(_timed_out(rule, budget, seen, ctx))
            traces.append(RuleTrace(rule.name, False, timeouts[-1].describe(),
                                    timed_out=True))
            continue
        if not ok:
            traces.append(RuleTrace(rule.name, False, reason))
            continue
        first_hit, first_note = len(out.hits), len(out.notes)
        _apply(rule, out)
        matched.append(rule.name)
        traces.append(_matched_trace(rule, reason, out, first_hit, first_note))
        if rule.stop:
            stopped = rule.name
    return _decision(out, ctx, tuple(matched), stopped, timeouts)


def _timed_out(rule: Rule, budget: Budget, seen: int, ctx: MailContext) -> RuleTimeout:
    timeout = RuleTimeout(rule.name, budget.timeouts[seen], budget.seconds)
    log.warning("rule %r timed out on message_id=<%s>: %s", rule.name,
                ctx.mail.message_id, timeout.describe())
    return timeout


def _apply(rule: Rule, out: Outcome) -> None:
    for action, param in rule.actions:
        action.apply(param, out, rule.name)
    if rule.final:
        out.seal(rule.final, rule.name)


def _skip_reason(rule: Rule, stopped: str) -> str:
    if stopped:
        return f"not evaluated: rule {stopped!r} said stop"
    if rule.apply_to == "followups":
        return "skipped: applies to follow-ups only"
    return "skipped: applies to new tickets only"


def _matched_trace(rule: Rule, reason: str, out: Outcome, hit: int, note: int) -> RuleTrace:
    extra = list(out.notes[note:])
    if rule.stop:
        extra.append("stop")
    text = reason + ("; " + "; ".join(extra) if extra else "")
    return RuleTrace(rule.name, True, text, tuple(out.hits[hit:]))


def _decision(out: Outcome, ctx: MailContext, matched: tuple[str, ...], stopped: str,
              timeouts: list[RuleTimeout]) -> Decision:
    values = out.values
    hits = list(out.hits)
    queue = values.get("queue", "")
    if not queue and not ctx.is_reply:
        queue = ctx.routed_queue or ctx.default_queue
        if ctx.routed_queue:
            hits.insert(0, RuleHit(ROUTING, "queue", ctx.routed_queue))
    assign = values.get("assign")
    return Decision(
        category=values.get("category", ""),
        priority=values.get("priority", ""),
        queue=queue,
        tags=tuple(out.tags),
        assign=assign if isinstance(assign, AssignRequest) else None,
        spam=bool(values.get("spam", False)),
        ack_template=values.get("ack"),
        hits=tuple(hits),
        matched=matched,
        stopped_by=stopped,
        timeouts=tuple(timeouts),
    )
