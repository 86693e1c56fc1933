"""Outgoing mail against a real relay on loopback: delayed by trouble, never lost, never doubled."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.outgoing.outbox import OutboxWorker
from helpdesk.store import db
from helpdesk.store.models import Outbox
from tests.helpers import (
    DaemonThread,
    RelaySink,
    engine_for,
    free_port,
    make_mail,
    outbox_rows,
    send,
    wait_outbox_passes,
    wait_until,
)


class RelaySinkOn(RelaySink):
    """A relay sink on a given port: the relay that comes back where the old one was."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=port,
                                     enable_SMTPUTF8=True)


def only_row(settings: Settings) -> Outbox:
    rows = outbox_rows(settings)
    assert len(rows) == 1, rows
    return rows[0]


def row_status(settings: Settings, status: str) -> Callable[[], bool]:
    return lambda: [r.status for r in outbox_rows(settings)] == [status]


def test_a_relay_that_answers_451_twice_gets_the_ack_once_on_the_third_try(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings,
) -> None:
    relay.refuse_next("451 4.3.0 Greylisted, try again", "451 4.3.0 Still greylisted")
    send(daemon.port, make_mail(message_id="<grey@customer.test>"))

    wait_until(row_status(settings_with_relay, "sent"), timeout=15, what="the ack to be sent")
    wait_outbox_passes(daemon)  # the worker went on, and nothing else went out
    received = relay.received
    assert len(received) == 1
    assert received[0].message["In-Reply-To"] == "<grey@customer.test>"
    row = only_row(settings_with_relay)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, "")
    assert row.sent_at is not None


def test_a_relay_that_answers_550_makes_the_ack_dead_and_it_is_not_retried(
    daemon: DaemonThread, relay: RelaySink, settings_with_relay: Settings,
) -> None:
    relay.refuse_next("550 5.1.1 No such user here")
    send(daemon.port, make_mail(message_id="<nouser@customer.test>"))

    wait_until(row_status(settings_with_relay, "dead"), timeout=15, what="the ack to die")
    wait_outbox_passes(daemon)  # and was not tried again
    row = only_row(settings_with_relay)
    assert row.status == "dead"
    assert row.attempts == 1
    assert "550" in row.last_error and "No such user here" in row.last_error
    assert relay.received == []


def test_mail_waits_while_no_relay_listens_and_goes_out_once_when_it_starts(
    make_settings: Callable[..., Settings], start_daemon: Callable[..., DaemonThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="helpdesk.outgoing.outbox")
    port = free_port()  # nothing listens here yet
    settings = make_settings({"outgoing": {"relay_host": "127.0.0.1", "relay_port": port}})
    daemon = start_daemon(settings)
    send(daemon.port, make_mail(message_id="<patient@customer.test>"))

    wait_until(lambda: outbox_rows(settings) and only_row(settings).attempts >= 2, timeout=15,
               what="two failed delivery attempts")
    row = only_row(settings)
    assert row.status in ("queued", "sending")
    assert "unreachable" in row.last_error or "refused" in row.last_error
    delayed = [r for r in caplog.records if "outgoing mail delayed" in r.getMessage()]
    assert len(delayed) == 1, "a dead relay is logged once, not on every attempt"

    relay = RelaySinkOn(port).start()
    try:
        wait_until(row_status(settings, "sent"), timeout=15, what="delivery once the relay is up")
        wait_outbox_passes(daemon)
        assert len(relay.received) == 1
        assert relay.received[0].message["In-Reply-To"] == "<patient@customer.test>"
    finally:
        relay.stop()
    assert "outgoing mail flowing again" in caplog.text


def test_without_a_relay_the_ack_lands_in_the_maildir_once_even_when_delivery_reruns(
    make_settings: Callable[..., Settings], start_daemon: Callable[..., DaemonThread],
) -> None:
    settings = make_settings()  # no relay_host: outgoing mail goes to data_dir/maildir
    daemon = start_daemon(settings)
    send(daemon.port, make_mail(message_id="<local@customer.test>"))
    new = settings.data_dir / "maildir" / "new"
    wait_until(row_status(settings, "sent"), timeout=15, what="the ack in the maildir")
    daemon.stop()

    files = list(new.iterdir())
    assert len(files) == 1
    content = files[0].read_bytes()
    assert content.startswith(b"X-Helpdesk-Envelope-To: carol@customer.test\n")
    assert b"In-Reply-To: <local@customer.test>" in content

    # a crash after the file was written but before "sent" was recorded: the lease runs out
    # and the row is delivered again
    engine = engine_for(settings)
    with db.session_scope(engine) as session:
        row = session.get(Outbox, only_row(settings).id)
        assert row is not None
        row.status, row.sent_at = "sending", None
        row.next_attempt_at = clock.now() - timedelta(seconds=1)
        session.add(row)
    result = OutboxWorker(settings, engine).deliver_due()

    assert result.sent == 1
    assert list(new.iterdir()) == files
    assert files[0].read_bytes() == content
    assert only_row(settings).status == "sent"
    assert OutboxWorker(settings, engine).deliver_due().sent == 0
