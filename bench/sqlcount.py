"""The SQL statements the pipeline runs for one new mail and for one reply to it.

    python bench/sqlcount.py [--database-url postgresql+psycopg://...] [--sql]

Runs the pipeline in this process on a fresh database (SQLite in a temporary
directory unless --database-url names an empty PostgreSQL database), with the
benchmark daemon's config (no agents, no rules), and counts the statements sent to
the database while each mail is processed (SAVEPOINT, RELEASE, BEGIN and COMMIT
included). --sql prints them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import event

from helpdesk.config import settings as config
from helpdesk.pipeline import Pipeline
from helpdesk.spool import Envelope, Spool
from helpdesk.store import db

ENVELOPE = Envelope(route="smtp", mail_from="carol@customer.test",
                    rcpt_tos=("support@example.test",))


def _mail(message_id: str, subject: str, in_reply_to: str = "") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Carol Customer <carol@customer.test>"
    msg["To"] = "support@example.test"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = msg["References"] = in_reply_to
    msg.set_content("Hello,\n\nthe printer is on fire.\n\nCarol\n")
    return msg.as_bytes()


def count(pipeline: Pipeline, spool: Spool, raw: bytes) -> list[str]:
    """The statements processing `raw` alone (one batch) sends, in order."""
    seen: list[str] = []

    def listen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(" ".join(statement.split()))

    spool.put(raw, ENVELOPE)
    event.listen(pipeline.writer, "before_cursor_execute", listen)
    try:
        outcomes = pipeline.process_batch()
    finally:
        event.remove(pipeline.writer, "before_cursor_execute", listen)
    assert [o.kind for o in outcomes] == ["stored"], outcomes
    return seen


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="")
    ap.add_argument("--sql", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url = args.database_url or f"sqlite:///{work / 'data' / 'helpdesk.db'}"
        (work / "helpdesk.toml").write_text(
            '[helpdesk]\nname = "Bench"\naddress = "support@example.test"\n'
            f'domains = ["example.test"]\ndata_dir = "{work / "data"}"\n'
            f'database_url = "{url}"\nsecret = "bench-secret"\n')
        settings = config.load(work / "helpdesk.toml")
        db.upgrade(url)
        spool = Spool(settings.data_dir / "spool")
        pipeline = Pipeline(settings, db.make_engine(url), spool)
        # a first mail from someone else: the caches and the first connection
        count(pipeline, spool, _mail("<warm@customer.test>", "warm up").replace(
            b"carol@", b"dave@"))
        for name, raw in (("new mail", _mail("<one@customer.test>", "Printer")),
                          ("reply", _mail("<two@customer.test>", "Re: Printer",
                                          "<one@customer.test>"))):
            seen = count(pipeline, spool, raw)
            print(f"{name}: {len(seen)} statements")
            if args.sql:
                for i, sql in enumerate(seen, 1):
                    print(f"  {i:2d} {sql[:200]}")
        pipeline.writer.dispose()
    sys.exit(0)


if __name__ == "__main__":
    main()
