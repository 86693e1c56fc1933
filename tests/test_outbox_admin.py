"""`helpdesk outbox` against the running daemon and a real relay: a mail the relay refused
is listed with the relay's answer, shown as it was sent, and sent again by `retry`, with
its own Message-ID; the retention pass then drops its text in its time."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from helpdesk.schedule import sweep
from helpdesk.store import db
from helpdesk.store.scheduler_state import OUTBOX_TEXT_MARK, state
from tests.agent_desk import relay_overrides
from tests.conftest import MakeSettings
from tests.helpers import (
    RelaySink,
    engine_for,
    make_mail,
    outbox_rows,
    run_cli,
    send,
    status_rows,
    wait_until,
)


def _cli(settings: Any, *args: str) -> tuple[int, str, str]:
    done = run_cli(settings, "outbox", *args)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def _text_mark(settings: Any) -> str:
    with db.session_scope(engine_for(settings)) as session:
        return state(session, OUTBOX_TEXT_MARK)


def test_a_refused_mail_is_listed_shown_and_sent_again(
        make_settings: MakeSettings, relay: RelaySink, start_daemon: Any) -> None:
    settings = make_settings(relay_overrides(relay))
    daemon = start_daemon(settings)
    relay.refuse_next("550 5.1.1 <carol@customer.test>: mailbox unavailable")
    send(daemon.port, make_mail(subject="Printer on fire"))
    dead = wait_until(lambda: [r for r in outbox_rows(settings) if r.status == "dead"],
                      timeout=20, what="the acknowledgement given up")[0]

    status = run_cli(settings, "status").stdout.decode()
    state, detail = status_rows(status)["outbox"]
    assert state == "dead mail" and detail.endswith("; `helpdesk outbox list --status dead`")

    code, out, _ = _cli(settings, "list", "--status", "dead")
    assert code == 0
    [line] = out.splitlines()
    assert line.startswith(f"{dead.id}\tdead\t1 tries\tack\tHD-1\tcarol@customer.test\t")
    assert "[HD-1] Printer on fire" in line and "mailbox unavailable" in line
    code, out, _ = _cli(settings, "list", "--json")
    [entry] = json.loads(out)
    assert entry["status"] == "dead" and entry["ticket"] == "HD-1"
    assert entry["size"] == len(dead.raw) and "mailbox unavailable" in entry["last_error"]

    code, out, _ = _cli(settings, "show", str(dead.id))
    assert code == 0
    assert out.startswith(f"{dead.id} (dead, 1 tries) ack from ")
    assert "last error: " in out and f"Message-ID: <{dead.message_id}>" in out

    # a pass settles the dead mail (kept with its text); sending it again reopens that
    assert sweep.run_pass(settings, engine_for(settings), dead.created_at).done == []
    assert _text_mark(settings) == str(dead.id)
    # a later mail, sent, and its text dropped in its time, before the dead one is retried
    send(daemon.port, make_mail(sender="Dan <dan@customer.test>", subject="Scanner too"))
    later_ack = wait_until(lambda: [r for r in outbox_rows(settings)
                                    if r.id > dead.id and r.status == "sent"],
                           timeout=20, what="the second acknowledgement sent")[0]
    kept = settings.outgoing.sent_text_kept
    sweep.run_pass(settings, engine_for(settings), later_ack.sent_at + kept + timedelta(seconds=1))
    assert _text_mark(settings) == str(later_ack.id)

    code, out, err = _cli(settings, "retry", str(dead.id), "999")
    assert code == 1
    assert out.strip() == f"queued again: {dead.id}"
    assert "not given up, left as they are: 999" in err
    assert _text_mark(settings) == str(dead.id - 1)
    relayed = wait_until(lambda: [r for r in relay.received if "carol@customer.test" in r.rcpt_tos],
                         timeout=20, what="the acknowledgement sent again")
    assert f"<{dead.message_id}>".encode() in relayed[0].raw  # the same mail, once more
    sent = wait_until(lambda: [r for r in outbox_rows(settings)
                               if r.id == dead.id and r.status == "sent"],
                      timeout=20, what="the mail recorded sent")[0]
    assert sent.attempts == 2 and sent.raw == dead.raw

    code, out, _ = _cli(settings, "retry", "--all-dead")
    assert (code, out.strip()) == (0, "no given-up mail")
    code, _, err = _cli(settings, "retry")
    assert code == 2 and "--all-dead" in err

    # the pass walks from the retried mail again: its text goes, and only its text is
    # counted (the later mail's was dropped already)
    later = sent.sent_at + kept + timedelta(seconds=1)
    assert [line for line in sweep.run_pass(settings, engine_for(settings), later).done
            if line.startswith("retention:")] == [
        "retention: dropped the text of 1 mail(s) sent over 30d ago ([outgoing] sent_text_kept)"]
    code, out, _ = _cli(settings, "show", str(dead.id))
    assert out.splitlines()[-1] == "its text was dropped after [outgoing] sent_text_kept"
