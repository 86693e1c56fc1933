"""`helpdesk db migrate-to URL`: a SQLite helpdesk moved to PostgreSQL keeps everything."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import SQLModel

from helpdesk.pipeline import Pipeline
from helpdesk.spool import Envelope, Spool
from helpdesk.store import db
from tests.conftest import MakeSettings
from tests.helpers import all_tickets, make_mail, run_cli


def _counts(url: str) -> dict[str, int]:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                    for t in SQLModel.metadata.sorted_tables}
    finally:
        engine.dispose()


def _ingest(settings, mails) -> None:  # type: ignore[no-untyped-def]
    db.upgrade(settings.database_url)
    engine = db.make_engine(settings.database_url)
    spool = Spool(settings.data_dir / "spool")
    for msg in mails:
        spool.put(msg.as_bytes(), Envelope("smtp", "carol@customer.test",
                                           ("support@example.test",)))
    Pipeline(settings, engine, spool).drain()
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_to_postgresql_copies_every_row(make_settings: MakeSettings, pg_url: str,
                                               tmp_path: Path) -> None:
    settings = make_settings()
    first = make_mail(subject="First", sender="c1@customer.test")
    _ingest(settings, [
        first, make_mail(subject="Second", sender="c2@customer.test"),
        make_mail(subject="Re: First", sender="c1@customer.test",
                  in_reply_to=first["Message-ID"]),
        make_mail(subject="Third", sender="c3@customer.test"),
    ])
    before = _counts(settings.database_url)
    assert before["ticket"] == 3 and before["message"] >= 4 and before["outbox"] >= 3

    result = run_cli(settings, "db", "migrate-to", pg_url)
    assert result.returncode == 0, result.stderr.decode()
    assert _counts(pg_url) == before
    moved = make_settings({"helpdesk": {"database_url": pg_url}}, name="moved")
    assert all_tickets(moved) == all_tickets(settings)

    # the id sequences moved past the copied rows: new mail gets the next ticket number
    _ingest(moved, [make_mail(subject="After the move", sender="c4@customer.test")])
    assert {t["id"] for t in all_tickets(moved)} == {"HD-1", "HD-2", "HD-3", "HD-4"}

    again = run_cli(settings, "db", "migrate-to", pg_url)
    assert again.returncode == 1 and b"not empty" in again.stderr
