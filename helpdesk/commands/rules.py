"""`helpdesk rules check` and `helpdesk rules test MAIL.eml [--json]`.

Exit codes: 0 when the rules are valid (check) or the mail was routed (test),
1 when the rules are invalid or the mail cannot be read; one message per
problem on stderr.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from helpdesk.agents import canned
from helpdesk.commands import CliState, pass_state
from helpdesk.errors import ParseError, RuleError
from helpdesk.mail.parse import parse
from helpdesk.rules import Decision
from helpdesk.rules.context import RulePaths, build_context, load_from_settings
from helpdesk.rules.engine import Explanation, explain
from helpdesk.rules.loader import RuleSetError
from helpdesk.rules.model import RuleSet
from helpdesk.spool import Envelope
from helpdesk.store import contacts_ops


def _load(state: CliState) -> RuleSet:
    try:
        return load_from_settings(state.settings)
    except RuleSetError as err:
        for problem in err.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(1)
    except RuleError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)


@click.group("rules")
def rules_group() -> None:
    """Check routing rules and try them on a mail."""


@rules_group.command("check")
@pass_state
def check(state: CliState) -> None:
    """Validate rules.toml, rules.d/*.toml, agents.toml and the canned replies
    (replies/*.md); exit 1 on any error."""
    ruleset = _load(state)
    replies, problems = canned.check_all(state.settings)
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        sys.exit(1)
    paths = RulePaths.from_settings(state.settings)
    files = ", ".join(str(p) for p in ruleset.sources) or f"none ({paths.rules} absent)"
    click.echo(
        f"ok: {len(ruleset.rules)} rules from {files}; "
        f"{len(ruleset.directory.agents)} agents, {len(ruleset.directory.teams)} teams; "
        f"{replies} canned replies"
    )


@rules_group.command("test")
@click.argument("mail", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--reply", is_flag=True, help="Treat the mail as a follow-up to a ticket.")
@click.option("--previous-tickets", type=int, default=0, help="The sender's earlier tickets.")
@click.option("--route", default="ingest", help='How it arrived: "smtp", "imap:NAME", ...')
@click.option("--rcpt", multiple=True, help="SMTP recipient (RCPT TO); repeatable.")
@click.option("--at", "arrived", type=click.DateTime(), default=None, help="Arrival time.")
@click.option("--vip", is_flag=True, help="Treat the sender as a VIP customer.")
@pass_state
def test(
    state: CliState,
    mail: Path,
    as_json: bool,
    reply: bool,
    previous_tickets: int,
    route: str,
    rcpt: tuple[str, ...],
    arrived: datetime | None,
    vip: bool,
) -> None:
    """Run MAIL through the rules without storing anything; say why each rule matched or not."""
    ruleset = _load(state)
    try:
        parsed = parse(mail.read_bytes())
    except ParseError as err:
        click.echo(f"error: {mail}: {err}", err=True)
        sys.exit(1)
    envelope = Envelope(route=route, rcpt_tos=rcpt)
    ctx = build_context(
        state.settings,
        parsed,
        envelope,
        is_reply=reply,
        previous_tickets=previous_tickets,
        arrived_at=arrived,
        vip=vip,
        organisation=contacts_ops.organisation(state.settings, parsed.from_addr),
    )
    result = explain(ruleset, ctx)
    if as_json:
        click.echo(json.dumps(as_dict(result), indent=2, ensure_ascii=False))
    else:
        click.echo(as_text(result))


def result_dict(decision: Decision) -> dict[str, Any]:
    """The final fields; template is null for the default acknowledgement, false for none."""
    assign = decision.assign
    template: str | bool | None = decision.ack_template
    if template == "":
        template = False
    return {
        "category": decision.category or None,
        "priority": decision.priority or None,
        "queue": decision.queue or None,
        "assignee": assign.describe() if assign else None,
        "assign": None
        if assign is None
        else {
            "agent": assign.agent or None,
            "team": assign.team or None,
            "strategy": assign.strategy if assign.team else None,
            "members": list(assign.members),
        },
        "tags": list(decision.tags),
        "spam": decision.spam,
        "template": template,
        "stopped_by": decision.stopped_by or None,
        "hits": [{"rule": h.rule, "field": h.field, "value": h.value} for h in decision.hits],
        # rules not applied because their regex ran out of time
        "timed_out": [{"rule": t.rule, "pattern": t.pattern, "reason": t.describe()}
                      for t in decision.timeouts],
    }


def as_dict(result: Explanation) -> dict[str, Any]:
    return {
        "rules": [{"name": t.name, "matched": t.matched, "reason": t.reason,
                   "timed_out": t.timed_out} for t in result.rules],
        "result": result_dict(result.decision),
    }


def as_text(result: Explanation) -> str:
    lines = []
    for trace in result.rules:
        if trace.timed_out:
            lines.append(f"TIMED OUT {trace.name}: {trace.reason}")
            continue
        mark = "MATCH" if trace.matched else "-    "
        lines.append(f"{mark} {trace.name}: {trace.reason}")
        lines += [f"        set {hit.field} = {hit.value}" for hit in trace.set]
    if not result.rules:
        lines.append("(no rules)")
    data = result_dict(result.decision)
    template = data["template"]
    shown = {None: "(default)", False: "none"}.get(template, template)  # type: ignore[call-overload]
    lines.append("")
    for key in ("category", "priority", "queue", "assignee"):
        lines.append(f"{key + ':':10} {data[key] or '(none)'}")
    lines.append(f"{'tags:':10} {', '.join(data['tags']) or '(none)'}")
    lines.append(f"{'spam:':10} {'yes' if data['spam'] else 'no'}")
    lines.append(f"{'template:':10} {shown}")
    if data["timed_out"]:
        lines.append(f"{'timed out:':10} {', '.join(t['rule'] for t in data['timed_out'])}")
    return "\n".join(lines)


COMMANDS = [rules_group]
