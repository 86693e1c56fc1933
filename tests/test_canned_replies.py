"""Canned replies (config/replies/NAME.md): `#reply NAME` in an agent's mail sends the
text with its placeholders filled to the customer through the real daemon and relay;
the shell's `tickets reply --canned`; `helpdesk rules check` names the file and line of
a bad one; an unknown name is refused with the known ones."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from helpdesk.agents import canned
from helpdesk.config.settings import Settings
from tests import agent_mails
from tests.agent_desk import body, reply_to, wait_mails_to
from tests.helpers import (
    DaemonThread,
    RelaySink,
    invoke_cli,
    make_mail,
    outbox_rows,
    run_cli,
    send,
    ticket,
    wait_ticket,
)

CAROL = "carol@customer.test"
RESET = """Printer reset

Hello {{ customer_name }},

about {{ ticket_id }} ({{ subject }}): switch it off, wait ten seconds, switch it on.

{{ agent_name }}
"""


def write_replies(settings: Settings, **files: str) -> Path:
    folder = canned.directory(settings)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.md").write_text(text)
    return folder


def _alice(daemon: DaemonThread, note: EmailMessage, typed: str) -> None:
    to = reply_to(note)
    raw = agent_mails.outlook(typed=typed, sender="Alice <alice@staff.test>", to=to,
                              original=note)
    send(daemon.port, raw, sender="alice@staff.test", rcpts=[to])


def test_a_canned_reply_by_mail_reaches_the_customer_with_its_placeholders_filled(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    write_replies(settings, **{"printer-reset": RESET})
    send(daemon.port, make_mail(subject="Printer on fire"))
    note = wait_mails_to(relay, "alice@staff.test", 1)[0]

    _alice(daemon, note, "#reply printer-resett")  # a typo: refused, naming the known ones
    refusal = wait_mails_to(relay, "alice@staff.test", 2)[1]
    assert "no canned reply 'printer-resett' (replies: printer-reset)" in body(refusal)

    _alice(daemon, note, "#reply printer-reset\n\nSorry for the trouble, Carol.")
    answer = wait_mails_to(relay, CAROL, 2)[1]
    text = body(answer)
    assert text.index("Sorry for the trouble, Carol.") < text.index("Hello Carol Customer,")
    assert "about HD-1 (Printer on fire): switch it off" in text
    assert "{{" not in text and "#reply" not in text
    done = wait_ticket(settings, 1, lambda t: t["status"] == "pending")
    assert [(e["actor"], e["new"]) for e in done["events"] if e["kind"] == "canned-reply"] \
        == [("alice", "printer-reset")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_shell_sends_a_canned_reply(
    desk_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    settings = desk_settings()
    write_replies(settings, **{"printer-reset": RESET})
    (tmp_path / "m.eml").write_bytes(make_mail().as_bytes())
    assert run_cli(settings, "ingest", str(tmp_path / "m.eml")).returncode == 0
    result = invoke_cli(settings, "tickets", "reply", "HD-1", "--as", "bob",
                        "--canned", "printer-reset")
    assert result.exit_code == 0, result.output
    sent = [r for r in outbox_rows(settings) if r.kind == "agent-reply"]
    assert len(sent) == 1 and b"about HD-1 (Printer on fire)" in sent[0].raw
    out = [m for m in ticket(settings, 1)["messages"] if m["direction"] == "out"]
    assert "Hello Carol Customer,\n\nabout HD-1" in out[-1]["body_text"]
    missing = invoke_cli(settings, "tickets", "reply", "HD-1", "--as", "bob", "--canned", "x")
    assert missing.exit_code == 1 and "no canned reply 'x'" in missing.output


def test_rules_check_names_the_file_and_line_of_a_bad_canned_reply(
    desk_settings: Callable[..., Settings],
) -> None:
    settings = desk_settings()
    folder = write_replies(settings, **{"printer-reset": RESET})
    good = invoke_cli(settings, "rules", "check")
    assert good.exit_code == 0 and "1 canned replies" in good.stdout

    write_replies(settings, oops="Hello,\n\nyour ticket {{ tiket_id }} is done.\n")
    bad = invoke_cli(settings, "rules", "check")
    assert bad.exit_code == 1
    assert f"{folder / 'oops.md'}, line 3: unknown placeholder {{{{ tiket_id }}}}" in bad.output
    assert "known: customer_name, customer_email, ticket_id, subject, agent_name" in bad.output

    (folder / "oops.md").write_text("Hi\n{% if ticket_id %}\nno end\n")
    broken = invoke_cli(settings, "rules", "check")
    assert broken.exit_code == 1 and f"{folder / 'oops.md'}, line " in broken.output
    # and an agent naming it is refused with the same reason, nothing sent
    assert "oops" in [c.name for c in canned.available(settings)]
