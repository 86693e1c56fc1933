"""The helpdesk's own mail coming back: a notification forwarded home by an agent's
mailbox, mail from any form of our own addresses. It is kept with a reason and tells
nobody, so no round of forwarding can start the next one."""

from __future__ import annotations

from typing import Any

import pytest

from helpdesk.config.settings import Settings
from helpdesk.store import db, queries
from tests.agent_desk import mails_to, msgid, wait_mails_to
from tests.helpers import (
    DaemonThread,
    RelaySink,
    engine_for,
    make_mail,
    send,
    wait_drained,
    wait_ticket,
    wait_until,
)

AGENTS = ("alice", "bob", "lisa")


def _notified(relay: RelaySink) -> dict[str, int]:
    return {name: len(mails_to(relay, f"{name}@staff.test")) for name in AGENTS}


def _without_loop_headers(raw: bytes) -> bytes:
    """What a forwarding rule that drops Auto-Submitted passes on."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    kept = [line for line in head.split(b"\r\n")
            if not line.lower().startswith((b"auto-submitted:", b"x-auto-response-suppress:"))]
    return b"\r\n".join(kept) + b"\r\n\r\n" + rest


def _quarantine_reasons(settings: Settings) -> list[str]:
    with db.snapshot_scope(engine_for(settings)) as session:
        return [q.reason for q in queries.quarantined(session)]


def test_our_notification_forwarded_back_by_an_agents_mailbox_tells_nobody(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail())
    for name in AGENTS:
        wait_mails_to(relay, f"{name}@staff.test", 1)
    note = next(r for r in relay.received if "alice@staff.test" in r.rcpt_tos)
    # alice's mailbox redirects everything to the helpdesk, stripping Auto-Submitted
    send(daemon.port, _without_loop_headers(note.raw), sender="alice@staff.test")
    t = wait_ticket(settings, 1, lambda t: len(t["messages"]) == 2, "the notification back")
    assert t["messages"][1]["visibility"] == "internal"
    own = [e for e in t["events"] if e["kind"] == "own-mail"]
    assert own and "this helpdesk's own address" in own[0]["detail"]
    assert t["status"] == "new"
    wait_drained(settings)  # a notification, had one been queued, would be out by now
    assert _notified(relay) == {name: 1 for name in AGENTS}


def test_a_mail_referencing_our_notification_tells_nobody(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail())
    note = wait_mails_to(relay, "alice@staff.test", 1)[0]
    # alice's private mailbox forwards it back as a new mail that still references it
    send(daemon.port, make_mail(sender="alice.home@private.test",
                                subject=f"Fwd: {note['Subject']}",
                                references=f"<{msgid(note)}>", body="forwarded"),
         sender="alice.home@private.test")
    t = wait_ticket(settings, 1, lambda t: len(t["messages"]) == 2, "the forward stored")
    assert t["messages"][1]["visibility"] == "internal"
    own = [e for e in t["events"] if e["kind"] == "own-mail"]
    assert own and f"<{msgid(note)}>" in own[0]["detail"]
    wait_drained(settings)  # a notification, had one been queued, would be out by now
    assert _notified(relay) == {name: 1 for name in AGENTS}


@pytest.mark.parametrize("sender", [
    "support+hd-1-xxxx@example.test",
    "Support+Anything@EXAMPLE.TEST",
    "billing+x@example.test",
    "support@example.org",  # a domain alias of the helpdesk
])
def test_mail_from_any_form_of_our_own_address_is_held_and_never_answered(
    sender: str, make_settings: Any, relay: RelaySink, start_daemon: Any,
) -> None:
    settings = make_settings({
        "helpdesk": {"domains": ["example.test", "example.org"]},
        "outgoing": {"relay_host": "127.0.0.1", "relay_port": relay.port}})
    daemon = start_daemon(settings)
    send(daemon.port, make_mail(sender=sender, subject="Automatic answer"), sender=sender)
    reasons = wait_until(lambda: _quarantine_reasons(settings), what="the mail held")
    assert f"this helpdesk's own address {sender.lower()}" in reasons[0]
    wait_drained(settings)
    assert relay.received == []
