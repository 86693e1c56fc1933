"""`helpdesk db migrate-to URL`: a SQLite helpdesk moved to PostgreSQL keeps everything."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import SQLModel
from sqlmodel import select as select_model

from helpdesk.pipeline import Pipeline
from helpdesk.spool import Envelope, Spool
from helpdesk.store import blobs, db
from helpdesk.store.models import Attachment, Message
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


def _without_raw_paths(tickets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tickets as they were, less where the raw mails are: moved into the database."""
    for t in tickets:
        for m in t["messages"]:
            assert m.pop("raw_path")
    return tickets


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
    after = _counts(pg_url)
    # the raw mails moved into the database too (tests/test_blobs_pg.py checks them)
    assert after.pop("blob") == before.pop("blob") + before["message"]
    after.pop("blob_chunk"), before.pop("blob_chunk")
    assert after == before
    moved = make_settings({"helpdesk": {"database_url": pg_url}}, name="moved")
    assert _without_raw_paths(all_tickets(moved)) == _without_raw_paths(all_tickets(settings))

    # the id sequences moved past the copied rows: new mail gets the next ticket number
    _ingest(moved, [make_mail(subject="After the move", sender="c4@customer.test")])
    assert {t["id"] for t in all_tickets(moved)} == {"HD-1", "HD-2", "HD-3", "HD-4"}

    again = run_cli(settings, "db", "migrate-to", pg_url)
    assert again.returncode == 1 and b"not empty" in again.stderr


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_files_of_data_dir_move_into_postgresql(make_settings: MakeSettings, pg_url: str,
                                                    tmp_path: Path) -> None:
    """Raw mails, attachments and quarantined mails: afterwards a daemon with an empty
    data_dir of its own reads them all from the database."""
    settings = make_settings()
    big = bytes(range(256)) * 5000  # 1.2 MiB: two chunks
    with_files = make_mail(subject="Two files", sender="c1@customer.test")
    with_files.add_attachment(big, maintype="application", subtype="octet-stream",
                              filename="big.bin")
    with_files.add_attachment(b"small", maintype="text", subtype="plain", filename="s.txt")
    again = make_mail(subject="Same file again", sender="c2@customer.test")
    again.add_attachment(big, maintype="application", subtype="octet-stream",
                         filename="big.bin")
    _ingest(settings, [with_files, again])
    assert run_cli(settings, "ingest", stdin=b"\x00 not a mail").returncode == 0
    engine = db.make_engine(settings.database_url)
    with db.session_scope(engine) as session:
        # a row whose file is missing: reported, and left as it was
        session.add(Attachment(message_id=1, filename="gone.txt", sha256="0" * 64))
    engine.dispose()

    result = run_cli(settings, "db", "migrate-to", pg_url)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "message files: 2 moved into the database" in out
    assert "quarantine files: 1 moved into the database" in out
    assert "attachment files: 2 moved into the database" in out  # big.bin once
    assert "files not found in data_dir: 1" in out

    moved = make_settings({"helpdesk": {"database_url": pg_url,
                                        "data_dir": str(tmp_path / "elsewhere")}},
                          name="moved")
    target = db.make_engine(pg_url)
    try:
        with db.session_scope(target) as session:
            raws = [m.raw_path for m in session.exec(select_model(Message)).all()]
            store = blobs.for_session(session, moved.data_dir)
            assert all(r.startswith("db:") for r in raws)
            assert b"Subject: Two files" in store.read(raws[0])
        source = blobs.open_attachment(target, moved.data_dir,
                                       hashlib.sha256(big).hexdigest())
        assert isinstance(source, blobs.DbBlob) and source.chunks == 2
        assert b"".join(source) == big
    finally:
        target.dispose()
    shown = run_cli(moved, "quarantine", "show", "1")
    assert shown.returncode == 0 and b"not a mail" in shown.stdout, shown.stderr.decode()
    assert not (tmp_path / "elsewhere" / "raw").exists()
