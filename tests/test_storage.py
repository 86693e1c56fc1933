"""What is stored: attachments once by content hash, raw mail kept, sanitised HTML, STARTTLS."""

from __future__ import annotations

import hashlib
import smtplib
import ssl
import subprocess
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlmodel import delete, select

from helpdesk.store import blobs, db
from helpdesk.store.blob_models import Blob, BlobChunk
from helpdesk.store.models import Message
from tests.conftest import MakeSettings
from tests.helpers import cli_json, engine_for, make_mail, run_cli, wait_until


def _with_attachment(subject: str, data: bytes) -> EmailMessage:
    msg = make_mail(subject=subject)
    msg.add_attachment(data, maintype="application", subtype="pdf", filename="invoice.pdf")
    return msg


def test_the_same_attachment_in_two_mails_is_stored_once(make_settings: MakeSettings) -> None:
    """On disk with SQLite; in the database with PostgreSQL (store/blobs.py)."""
    settings = make_settings()
    pdf = b"%PDF-1.4 pretend invoice " * 200
    for subject in ("first invoice", "the same invoice again"):
        result = run_cli(settings, "ingest", stdin=_with_attachment(subject, pdf).as_bytes())
        assert result.returncode == 0, result.stderr.decode()
    files = [p for p in (settings.data_dir / "attachments").rglob("*") if p.is_file()]
    engine = engine_for(settings)
    with db.session_scope(engine) as session:
        in_db = session.exec(select(Blob.sha256)).all()
    sha = hashlib.sha256(pdf).hexdigest()
    if settings.database_url.startswith("sqlite"):
        assert len(files) == 1 and files[0].read_bytes() == pdf and in_db == []
    else:
        assert files == [] and not (settings.data_dir / "raw").exists()
        assert in_db.count(sha) == 1 and len(in_db) == 3  # the pdf and the two raw mails
    for ticket_id in ("HD-1", "HD-2"):
        ticket = cli_json(settings, "tickets", "show", ticket_id)
        (att,) = ticket["messages"][0]["attachments"]
        assert (att["filename"], att["content_type"], att["size"], att["sha256"]) == (
            "invoice.pdf", "application/pdf", len(pdf), sha)
        with db.session_scope(engine) as session:
            raw = blobs.for_session(session, settings.data_dir).read(
                ticket["messages"][0]["raw_path"])
        assert b"Subject: " + ticket["subject"].encode() in raw
        source = blobs.open_attachment(engine, settings.data_dir, sha)
        assert source is not None
        assert (source.read_bytes() if isinstance(source, Path) else b"".join(source)) == pdf


def test_an_html_only_mail_gets_readable_text_and_sanitised_html(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    msg = make_mail(subject="html only")
    msg.set_content("<p>Dear support,</p><p>the <b>VPN</b> is down.</p>"
                    "<script>alert('x')</script>", subtype="html")
    assert run_cli(settings, "ingest", stdin=msg.as_bytes()).returncode == 0
    from helpdesk.store import db, queries
    from tests.helpers import engine_for

    with db.session_scope(engine_for(settings)) as session:
        (message,) = queries.messages(session, 1)
    assert "VPN is down" in " ".join(message.body_text.split())
    assert "<script>" not in message.body_html and "<b>VPN</b>" in message.body_html


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_starttls_with_a_configured_certificate(
    make_settings: MakeSettings, start_daemon, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    cert, key = _self_signed(tmp_path)
    settings = make_settings({"smtp": {"tls_cert": str(cert), "tls_key": str(key)}})
    daemon = start_daemon(settings)
    context = ssl.create_default_context(cafile=str(cert))
    with smtplib.SMTP("127.0.0.1", daemon.port) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        client.starttls(context=context)
        client.sendmail("carol@customer.test", ["support@example.test"],
                        make_mail(subject="over TLS").as_bytes())
    wait_until(lambda: cli_json(settings, "tickets", "list"), timeout=15, what="ticket")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_files_of_rows_written_before_the_blob_table_still_read_on_postgresql(
    make_settings: MakeSettings,
) -> None:
    """A row that points at a file (written before 0016_blobs_pg, when PostgreSQL too
    kept files in data_dir) is read from data_dir; new rows go to the database."""
    settings = make_settings()
    pdf = b"%PDF-1.4 an old invoice " * 100
    assert run_cli(settings, "ingest", stdin=_with_attachment("old", pdf).as_bytes()
                   ).returncode == 0
    engine = engine_for(settings)
    old_raw = b"Subject: kept as a file\r\n\r\nhello\r\n"
    rel = Path("raw") / "ab" / "old.eml"
    (settings.data_dir / rel).parent.mkdir(parents=True)
    (settings.data_dir / rel).write_bytes(old_raw)
    sha = hashlib.sha256(pdf).hexdigest()
    with db.session_scope(engine) as session:
        (message,) = session.exec(select(Message)).all()
        assert message.raw_path.startswith("db:")
        message.raw_path = str(rel)
        for blob_table in (BlobChunk, Blob):  # as if the attachment were a file too
            session.exec(delete(blob_table))  # type: ignore[call-overload]
    path = blobs.attachment_path(settings.data_dir, sha)
    path.parent.mkdir(parents=True)
    path.write_bytes(pdf)
    with db.session_scope(engine) as session:
        (message,) = session.exec(select(Message)).all()
        assert blobs.for_session(session, settings.data_dir).read(message.raw_path) == old_raw
    assert blobs.open_attachment(engine, settings.data_dir, sha) == path
    path.unlink()  # elsewhere: not on this machine
    assert blobs.open_attachment(engine, settings.data_dir, sha) is None
