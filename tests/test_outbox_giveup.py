"""A relay that defers a mail for days: the mail is given up like an MTA would, and the
admins are told; before that deadline it is only ever delayed."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.errors import TemporaryError
from helpdesk.outgoing import compose as mailout
from helpdesk.outgoing.outbox import OutboxWorker
from helpdesk.store import db
from tests.conftest import MakeSettings
from tests.helpers import RelaySink, engine_for, outbox_rows


def _one_queued_mail(settings: Settings) -> datetime:
    """A fresh database with one acknowledgement in the outbox; the clock frozen now."""
    db.upgrade(settings.database_url)
    start = clock.now()
    clock.freeze(start)
    with db.session_scope(engine_for(settings)) as session:
        msg = mailout.build(settings, to=["carol@customer.test"], subject="hello", text="hi")
        mailout.queue(session, msg, kind="ack", ticket_id=None, mail_from="", automatic=True)
    return start


def test_a_mail_deferred_past_the_queue_lifetime_is_given_up(
    make_settings: MakeSettings, relay: RelaySink
) -> None:
    settings = make_settings({
        "helpdesk": {"admins": ["ops@example.test"]},
        "outgoing": {"relay_host": "127.0.0.1", "relay_port": relay.port,
                     "give_up_after_hours": 48, "backoff_base": 1, "backoff_max": 1},
    })
    engine = engine_for(settings)
    start = _one_queued_mail(settings)
    worker = OutboxWorker(settings, engine)
    relay.refuse_next(*["451 4.3.0 try again"] * 3)

    assert worker.deliver_due().failed == 1
    clock.freeze(start + timedelta(hours=47))
    assert worker.deliver_due().failed == 1
    assert outbox_rows(settings)[0].status == "queued"  # still only delayed

    clock.freeze(start + timedelta(hours=49))
    worker.deliver_due()
    row = outbox_rows(settings)[0]
    assert row.status == "dead"
    assert "451" in row.last_error
    assert worker.dead_rows == [row.id]
    assert relay.received == []


def _database_blinks_when_a_delivery_is_recorded(engine: Engine) -> None:
    """The database drops out once, just as a delivery is being recorded: the driver's
    error raised where the statement would go to the database (a seam of SQLAlchemy's)."""
    blinked: list[bool] = []

    def blink(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if "sent_at" in statement and statement.startswith("UPDATE") and not blinked:
            blinked.append(True)
            raise OperationalError(statement, parameters, Exception("connection dropped"))

    event.listen(engine, "before_cursor_execute", blink)


def test_a_delivery_whose_record_fails_is_not_sent_again(
    make_settings: MakeSettings, relay: RelaySink
) -> None:
    settings = make_settings({"outgoing": {"relay_host": "127.0.0.1", "relay_port": relay.port,
                                           "lease": 2}})
    engine = engine_for(settings)
    start = _one_queued_mail(settings)
    worker = OutboxWorker(settings, engine)
    _database_blinks_when_a_delivery_is_recorded(engine)
    with pytest.raises(TemporaryError):
        worker.deliver_due()
    assert len(relay.received) == 1
    clock.freeze(start + timedelta(seconds=10))  # the lease has run out
    worker.deliver_due()
    assert len(relay.received) == 1
    assert outbox_rows(settings)[0].status == "sent"
