"""Plain inserts with the model's defaults (helpdesk/store/inserts.py), on SQLite.

The pipeline writes its contact, ticket and outbox rows this way; a ticket or contact
goes on as an object the session holds, and must survive a rolled-back savepoint
whose id SQLite hands to the next insert.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlmodel import Session, SQLModel, select

from helpdesk.config.settings import Settings
from helpdesk.store import db, inserts
from helpdesk.store.api_models import HookEvent
from helpdesk.store.models import Attachment, Contact, Event, Message, Outbox, Ticket
from tests.helpers import engine_for


def test_values_fill_in_the_models_defaults_and_refuse_what_the_model_lacks() -> None:
    row = inserts.values(Ticket, subject="Printer on fire", queue="it")
    assert row["subject"] == "Printer on fire" and row["queue"] == "it"
    assert row["status"] == "new" and row["priority"] == "normal" and row["channel"] == "mail"
    assert row["tags"] == [] and row["created_at"] is not None
    assert "id" not in row
    assert inserts.values(Ticket)["tags"] is not inserts.values(Ticket)["tags"]
    with pytest.raises(TypeError, match=r"Outbox\.kind has no default"):
        inserts.values(Outbox, mail_from="", raw=b"")
    with pytest.raises(TypeError, match="Ticket has no column colour"):
        inserts.values(Ticket, colour="red")


@pytest.mark.parametrize("model", [Contact, Ticket, Message, Attachment, Event, Outbox, HookEvent])
def test_values_name_every_column_of_the_table(model: type[SQLModel]) -> None:
    """A column the model declares outside its fields would be left out of every plain
    insert (a NOT NULL one failing every mail, a nullable one staying empty)."""
    required = {c.name: None for c in model.__table__.columns  # type: ignore[attr-defined]
                if c.name != "id" and model.model_fields[c.name].is_required()}
    columns = {c.name for c in model.__table__.columns} - {"id"}  # type: ignore[attr-defined]
    assert set(inserts.values(model, **required)) == columns


def test_an_attached_object_is_the_model_made_from_the_same_row() -> None:
    row = inserts.values(Ticket, subject="Same", queue="it", tags=["a"])
    with Session() as session:
        attached = inserts.attach(session, Ticket, 7, row)
    assert attached.model_dump() == Ticket(id=7, **row).model_dump()
    assert attached.subject == "Same" and attached.tags == ["a"] and attached.id == 7


def test_a_row_inserted_and_attached_reads_back_and_tracks_changes(
        make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    db.upgrade(settings.database_url)
    with db.session_scope(engine_for(settings)) as session:
        row = inserts.values(Ticket, subject="Attached")
        ticket = inserts.attach(session, Ticket, inserts.insert(session, Ticket, row), row)
        ticket.priority = "high"  # an UPDATE at the next flush, no second INSERT
        session.commit()
    with db.session_scope(engine_for(settings)) as session:
        [stored] = session.exec(select(Ticket)).all()
        assert (stored.subject, stored.priority) == ("Attached", "high")


def test_an_id_taken_back_by_a_rolled_back_savepoint_can_be_attached_again(
        make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    db.upgrade(settings.database_url)
    with db.session_scope(engine_for(settings)) as session:
        savepoint = session.begin_nested()
        row = inserts.values(Contact, email="gone@customer.test")
        gone = inserts.attach(session, Contact, inserts.insert(session, Contact, row), row)
        savepoint.rollback()  # `gone` is still referenced: the session still holds it
        row = inserts.values(Contact, email="kept@customer.test")
        new_id = inserts.insert(session, Contact, row)
        # SQLite gives the next row the id rolled back; a PostgreSQL sequence never does
        reused = settings.database_url.startswith("sqlite")
        assert (new_id == gone.id) is reused
        kept = inserts.attach(session, Contact, new_id, row)
        assert session.get(Contact, new_id) is kept
        if reused:
            assert gone not in session
        session.commit()
    with db.session_scope(engine_for(settings)) as session:
        assert [c.email for c in session.exec(select(Contact)).all()] == ["kept@customer.test"]
