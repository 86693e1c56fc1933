"""Every real-world corpus mail ends as a ticket message or in quarantine with a reason.

The corpus is tests/corpus/ (a subset) or $HELPDESK_CORPUS (the whole shared corpus).
Parsing expectations are checked in test_parse_corpus.py; here the stored result is
checked: subject and sender of the ticket message agree with the upstream expectations.
"""

from __future__ import annotations

from collections import Counter

from sqlmodel import select

from helpdesk.mail.parse import parse
from helpdesk.pipeline import Pipeline
from helpdesk.spool import Envelope, Spool
from helpdesk.store import db, queries
from helpdesk.store.db import session_scope
from helpdesk.store.models import Message
from tests.conftest import MakeSettings
from tests.corpus import corpus_id, expectations, iter_corpus_files
from tests.helpers import engine_for


def test_every_corpus_mail_is_a_message_or_quarantined_with_a_reason(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    db.upgrade(settings.database_url)
    spool = Spool(settings.data_dir / "spool")
    pipeline = Pipeline(settings, engine_for(settings), spool)
    files = list(iter_corpus_files())
    assert len(files) > 100
    outcomes: dict[str, str] = {}
    by_name: dict[str, str] = {}
    by_path = {corpus_id(path): path for path in files}
    for path in files:
        name = spool.put(path.read_bytes(), Envelope(route="ingest",
                                                     rcpt_tos=("support@example.test",)))
        by_name[name] = corpus_id(path)
    while (entry := spool.claim()) is not None:
        outcome = pipeline.process_entry(entry)
        assert outcome.kind in ("stored", "duplicate", "quarantined"), (by_name[entry.name],
                                                                         outcome)
        outcomes[by_name[entry.name]] = outcome.kind + " " + outcome.detail
    assert set(outcomes) == set(by_name.values())
    kinds = Counter(o.split()[0] for o in outcomes.values())
    with session_scope(engine_for(settings)) as session:
        stored = len(session.exec(select(Message.id)).all())
        held = queries.quarantined(session)
        assert all(q.reason for q in held)
    assert stored + len(held) + kinds["duplicate"] == len(files)
    assert kinds["quarantined"] == len(held)
    # a duplicate is only ever a copy of a stored mail with the same Message-ID
    # (the corpus has a few: LF-only copies, RFC 2822's delivered and resent examples)
    # (the outcome names the stored message it duplicates: "duplicate of message N on HD-M")
    with session_scope(engine_for(settings)) as session:
        stored_ids = dict(session.exec(select(Message.id, Message.message_id)).all())
    for source, outcome in outcomes.items():
        if outcome.startswith("duplicate"):
            number = int(outcome.split("duplicate of message ", 1)[1].split()[0])
            assert stored_ids[number] == parse(by_path[source].read_bytes()).message_id, source
    # notmuch's "same Message-ID, different content" mails are all kept
    notmuch_dups = [k for k in outcomes if k.startswith("notmuch/duplicate")]
    assert all(outcomes[k].startswith("stored") for k in notmuch_dups)


def test_stored_corpus_messages_keep_the_expected_subject_and_sender(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    db.upgrade(settings.database_url)
    spool = Spool(settings.data_dir / "spool")
    pipeline = Pipeline(settings, engine_for(settings), spool)
    checked = 0
    for path in iter_corpus_files():
        exp = expectations(path)
        if not exp or not ({"subject", "from"} & set(exp)):
            continue
        name = spool.put(path.read_bytes(), Envelope(route="ingest"))
        entry = spool.claim(name)
        assert entry is not None
        outcome = pipeline.process_entry(entry)
        assert outcome.kind == "stored", (corpus_id(path), outcome)
        number = int(outcome.ticket.split("-")[1])
        with session_scope(engine_for(settings)) as session:
            message = queries.messages(session, number)[-1]
        if isinstance(exp.get("subject"), str):
            assert message.subject == " ".join(str(exp["subject"]).split()) or \
                message.subject == exp["subject"], corpus_id(path)
        sender = exp.get("from")
        if isinstance(sender, str) and "@" in sender:
            shown = f"{message.from_name} <{message.from_addr}>".lower()
            assert sender.lower() in (message.from_addr, shown) or \
                message.from_addr in sender.lower(), corpus_id(path)
        checked += 1
    assert checked >= 15
