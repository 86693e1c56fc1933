"""db.snapshot_scope reads one moment on both databases: a ticket page read in several
queries never shows a message's event without the message because a commit fell
between two of them (SQLite's driver begins no transaction for a SELECT on its own)."""

from __future__ import annotations

from sqlalchemy import text

from helpdesk.store import db
from tests.conftest import MakeSettings


def test_a_snapshot_read_does_not_see_what_is_committed_while_it_reads(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    db.upgrade(settings.database_url)
    reader, writer = db.make_engine(settings.database_url), db.make_engine(settings.database_url)
    count = text("SELECT count(*) FROM contact")
    try:
        with db.snapshot_scope(reader) as session:
            before = session.execute(count).scalar_one()
            with writer.begin() as conn:
                conn.execute(text("INSERT INTO contact (email, name, created_at) "
                                  "VALUES ('new@customer.test', '', CURRENT_TIMESTAMP)"))
            during = session.execute(count).scalar_one()
        with db.snapshot_scope(reader) as session:
            after = session.execute(count).scalar_one()
    finally:
        reader.dispose()
        writer.dispose()
    assert (before, during, after) == (0, 0, 1)
