"""Acting on tickets from the shell: `helpdesk tickets assign|status|reply|note --as AGENT`
runs the same commands, checks and actions as an agent's reply by mail, and the reply
reaches the customer through the outbox and the relay like a mail reply; and
`helpdesk quarantine discard`."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from helpdesk.config.settings import Settings
from helpdesk.outgoing.outbox import OutboxWorker
from tests.agent_desk import body, msgid
from tests.conftest import MakeSettings
from tests.helpers import RelaySink, engine_for, invoke_cli, make_mail, outbox_rows, run_cli, ticket

CAROL = "carol@customer.test"


def _desk(desk_settings: Callable[..., Settings], tmp_path: Path,
          *mails: EmailMessage, **extra: object) -> Settings:
    """The agents' desk config and the mails ingested as tickets (no daemon)."""
    settings = desk_settings(**extra)
    for i, mail in enumerate(mails):
        (tmp_path / f"{i}.eml").write_bytes(mail.as_bytes())
    result = run_cli(settings, "ingest", *(str(tmp_path / f"{i}.eml") for i in range(len(mails))))
    assert result.returncode == 0, result.stderr.decode()
    return settings


def _deliver(settings: Settings, relay: RelaySink) -> list[EmailMessage]:
    """What the daemon's outbox worker does: send every queued mail to the relay."""
    OutboxWorker(settings, engine_for(settings)).deliver_due()
    return [email.message_from_bytes(r.raw, policy=email.policy.default)  # type: ignore[misc]
            for r in relay.received]


def _to(mails: list[EmailMessage], address: str) -> list[EmailMessage]:
    return [m for m in mails if address in str(m["To"]) + str(m.get("Cc", ""))]


def test_a_reply_from_the_shell_reaches_the_customer_as_a_mail_reply_would(
    desk_settings: Callable[..., Settings], relay: RelaySink, tmp_path: Path,
) -> None:
    first = make_mail(cc="Dave <dave@customer.test>")
    settings = _desk(desk_settings, tmp_path, first)
    result = invoke_cli(settings, "tickets", "reply", "HD-1", "--as", "alice",
                        "-m", "Hi Carol,\n\nplease switch it off at the wall.")
    assert result.exit_code == 0, result.output
    assert "HD-1: reply sent, status pending" in result.stdout

    answer = _to(_deliver(settings, relay), CAROL)[-1]  # after the acknowledgement
    assert answer["From"].addresses[0].addr_spec == "support@example.test"
    assert answer["Subject"] == "Re: [HD-1] Printer on fire"
    assert answer["In-Reply-To"] == f"<{msgid(first)}>"
    assert [a.addr_spec for a in answer["Cc"].addresses] == ["dave@customer.test"]
    assert answer["Reply-To"].addresses[0].addr_spec.startswith("support+hd-1-")
    assert answer["Auto-Submitted"] is None  # a person's mail
    assert body(answer).startswith("Hi Carol,\n\nplease switch it off at the wall.")
    assert b"alice@staff.test" not in answer.as_bytes()

    t = ticket(settings)
    assert t["status"] == "pending" and t["first_response"] and t["watchers"] == ["alice"]
    assert [m["visibility"] for m in t["messages"] if m["direction"] == "out"] == [
        "sent to customer"]
    # the text may come on stdin, as from an editor or a pipe
    again = invoke_cli(settings, "tickets", "reply", "hd-1", "--as", "alice@staff.test",
                       stdin="It should be cool by now.\n")
    assert again.exit_code == 0, again.output
    assert body(_to(_deliver(settings, relay), CAROL)[-1]).startswith("It should be cool")


def test_commands_from_the_shell_are_checked_and_applied_as_by_mail(
    desk_settings: Callable[..., Settings], relay: RelaySink, tmp_path: Path,
) -> None:
    settings = _desk(desk_settings, tmp_path, make_mail(),
                     queue={"support": {"team": "support", "review": True}})

    def act(*args: str, stdin: str | None = None) -> tuple[int, str]:
        result = invoke_cli(settings, "tickets", *args, stdin=stdin)
        return result.exit_code, result.output

    # only agents of agents.toml act; a refused command changes nothing (still "new")
    code, out = act("assign", "HD-1", "bob", "--as", "mallory")
    assert code == 1 and "--as mallory: not an agent in agents.toml" in out, out
    code, out = act("assign", "HD-1", "nobody", "--as", "alice")
    assert code == 1 and "#assign nobody: no agent named 'nobody'" in out, out
    code, out = act("status", "HD-1", "bogus", "--as", "alice")
    assert code == 1 and "status must be one of open, pending, resolved, closed" in out, out
    assert act("note", "HD-1", "--as", "alice", stdin="  \n")[0] == 1
    assert act("status", "HD-99", "open", "--as", "alice")[1].strip().endswith("no ticket HD-99")
    assert ticket(settings)["status"] == "new" and ticket(settings)["events"][-1]["kind"] == "ack"

    assert act("assign", "HD-1", "bob", "--as", "lisa") == (0, "HD-1: status open\n")
    assert act("note", "HD-1", "--as", "bob", stdin="Customer called: it is the toner.")[0] == 0
    # in a review queue, bob's resolution waits for the lead, as it would by mail
    assert act("status", "HD-1", "resolved", "--as", "bob") == (
        0, "HD-1: resolved waits for lisa's review\n")

    t = ticket(settings)
    assert (t["status"], t["assignee"]) == ("open", "bob")
    changes = [(e["actor"], e["kind"], e["field"], e["new"]) for e in t["events"][2:]]
    assert changes == [("lisa", "change", "status", "open"),
                       ("lisa", "change", "assignee", "bob"),
                       ("bob", "note", "", ""),
                       ("bob", "review-requested", "", "resolved")]
    note = t["messages"][-1]
    assert (note["internal"], note["from"], note["body_text"].strip()) == (
        True, "bob@staff.test", "Customer called: it is the toner.")
    assert note["threaded_by"] == "command line, as bob"
    # the same mails as by mail: bob is told of his assignment, lisa (a watcher since she
    # assigned it) of bob's note and of the review; the customer only got her ack
    sent = [(r.recipient, r.kind) for r in outbox_rows(settings)][4:]
    assert sent == [("bob@staff.test", "notify-assigned"), ("lisa@staff.test", "notify-note"),
                    ("lisa@staff.test", "notify-review")], sent


def test_discarding_a_quarantined_mail_keeps_a_record_and_refuses_unknown_ids(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    run_cli(settings, "ingest", stdin=b"\x00 not a mail at all")
    assert [q["id"] for q in _quarantine(settings)] == [1]

    result = run_cli(settings, "quarantine", "discard", "Q1", "--reason", "spam, not a mail")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"Q1: discarded\n"
    log = result.stderr.decode()
    assert "quarantine Q1 discarded by" in log and "spam, not a mail" in log
    assert "cannot parse" in log  # what it had been quarantined for

    assert _quarantine(settings) == []
    kept = _quarantine(settings, "--all")
    assert [(q["id"], q["status"]) for q in kept] == [(1, "discarded")]
    for qid, why in (("Q1", "no held quarantine entry Q1 (it is discarded)"),
                     ("99", "no held quarantine entry Q99"),
                     ("bogus", "not a quarantine id: bogus")):
        refused = invoke_cli(settings, "quarantine", "discard", qid)
        assert refused.exit_code == 1 and why in refused.stderr, refused.output


def _quarantine(settings: Settings, *args: str) -> list[dict[str, object]]:
    import json

    result = invoke_cli(settings, "quarantine", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))
