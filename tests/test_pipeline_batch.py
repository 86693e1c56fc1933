"""Group commit: many spooled mails in one transaction, a savepoint each (helpdesk/batch.py).

On SQLite and PostgreSQL: a mail that fails takes back only what it wrote and is
retried or quarantined alone; an outage in the middle gives the whole batch back
uncounted; the same mail twice in one batch is stored once; and a batch processed
again (a crash after its commit, before its spool entries were deleted) writes nothing.
"""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from collections.abc import Callable

from sqlmodel import Session, select

from helpdesk.config.settings import Settings
from helpdesk.errors import TemporaryError
from helpdesk.mail.parse import ParsedMail
from helpdesk.pipeline import Outcome, Pipeline
from helpdesk.spool import MAX_RECOVERIES, Envelope, Spool
from helpdesk.store import blobs, db
from helpdesk.store import tickets as store
from helpdesk.store.models import Contact, Event, Message, Outbox, Quarantine, Ticket
from tests.helpers import engine_for, make_mail, spool_entries

ENVELOPE = Envelope(route="smtp", mail_from="someone@customer.test",
                    rcpt_tos=("support@example.test",))


class FailingHook:
    """A reply hook (the pipeline's seam for claiming a mail) that writes a contact for
    the mail, then fails: the write must go with the failure."""

    def __init__(self, subject: str, error: Callable[[], Exception]) -> None:
        self.subject = subject
        self.error = error
        self.armed = True
        self.calls = 0

    def __call__(self, session: Session, mail: ParsedMail) -> Ticket | None:
        if self.armed and self.subject in mail.subject:
            self.calls += 1
            store.contact_for(session, f"half-written-{self.calls}@customer.test")
            raise self.error()
        return None


def _pipeline(settings: Settings, hook: FailingHook | None = None) -> tuple[Pipeline, Spool]:
    db.upgrade(settings.database_url)
    spool = Spool(settings.data_dir / "spool")
    return Pipeline(settings, engine_for(settings), spool,
                    reply_hooks=[hook] if hook else []), spool


def _spool_mails(spool: Spool, subjects: list[str]) -> dict[str, bytes]:
    raws = {}
    for i, subject in enumerate(subjects):
        raw = make_mail(sender=f"Customer {i} <c{i}@customer.test>", subject=subject,
                        message_id=f"<batch-{i}@customer.test>").as_bytes()
        spool.put(raw, ENVELOPE)
        raws[subject] = raw
    return raws


def _rows(settings: Settings) -> dict[str, list]:  # type: ignore[type-arg]
    with db.session_scope(engine_for(settings)) as session:
        return {name: list(session.exec(select(model)).all())
                for name, model in (("tickets", Ticket), ("messages", Message),
                                    ("events", Event), ("outbox", Outbox),
                                    ("contacts", Contact), ("quarantine", Quarantine))}


def _acks_by_original(outbox: list[Outbox]) -> Counter[str]:
    return Counter(str(email.message_from_bytes(r.raw, policy=email.policy.default)
                       ["In-Reply-To"]).strip("<>") for r in outbox)


def test_a_failing_mail_in_the_middle_of_a_batch_takes_back_only_its_own_writes(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    hook = FailingHook("poison", lambda: RuntimeError("hook exploded on this mail"))
    pipeline, spool = _pipeline(settings, hook)
    subjects = ["fine 0", "fine 1", "the poison mail", "fine 3", "fine 4"]
    _spool_mails(spool, subjects)

    outcomes = pipeline.process_batch()

    assert [o.kind for o in outcomes] == ["stored", "stored", "retry", "stored", "stored"]
    rows = _rows(settings)
    assert sorted(t.subject for t in rows["tickets"]) == ["fine 0", "fine 1", "fine 3", "fine 4"]
    assert len(rows["messages"]) == 4
    assert "half-written-1@customer.test" not in {c.email for c in rows["contacts"]}, \
        "the failed mail's savepoint was not rolled back"
    assert "c2@customer.test" not in {c.email for c in rows["contacts"]}
    # each stored mail is whole: its ticket, message, history and acknowledgement
    for ticket in rows["tickets"]:
        assert [m.ticket_id for m in rows["messages"]].count(ticket.id) == 1
        assert any(e.ticket_id == ticket.id and e.kind == "created" for e in rows["events"])
    assert _acks_by_original(rows["outbox"]) == Counter(
        f"batch-{i}@customer.test" for i in (0, 1, 3, 4))
    with db.session_scope(engine_for(settings)) as session:  # each raw mail where its row says
        stored = blobs.for_session(session, settings.data_dir)
        assert all(stored.read(message.raw_path) for message in rows["messages"])
    # the stored mails' entries are gone; only the failed one waits, counted once
    assert spool_entries(settings, "work") == []
    [left] = spool.pending()
    assert left.endswith(".r1.mail")

    later = pipeline.drain()
    assert [o.kind for o in later] == ["retry"] * (MAX_RECOVERIES - 2) + ["quarantined"]
    rows = _rows(settings)
    assert len(rows["tickets"]) == 4 and len(rows["outbox"]) == 4
    assert [q.reason for q in rows["quarantine"]] == [
        f"processing failed {MAX_RECOVERIES} times: RuntimeError: hook exploded on this mail"]
    assert not {c.email for c in rows["contacts"]} & {
        f"half-written-{n}@customer.test" for n in range(1, MAX_RECOVERIES + 1)}
    assert spool.pending() == [] and spool_entries(settings, "work") == []


def test_an_outage_in_the_middle_of_a_batch_gives_every_mail_back_uncounted(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    hook = FailingHook("outage", lambda: TemporaryError("database unavailable: test"))
    pipeline, spool = _pipeline(settings, hook)
    subjects = ["fine 0", "fine 1", "outage here", "fine 3"]
    _spool_mails(spool, subjects)
    names = spool.pending()

    outcomes = pipeline.process_batch()

    assert [o.kind for o in outcomes] == ["deferred"] * 4
    rows = _rows(settings)
    # nothing of the mails before the outage was committed either: one transaction
    assert rows["tickets"] == [] and rows["messages"] == [] and rows["outbox"] == []
    assert rows["contacts"] == []
    assert spool.pending() == names, "given back untouched, not counted as failures"
    assert spool_entries(settings, "work") == []

    hook.armed = False  # the database is back
    assert [o.kind for o in pipeline.drain()] == ["stored"] * 4
    rows = _rows(settings)
    assert sorted(t.subject for t in rows["tickets"]) == sorted(subjects)
    assert _acks_by_original(rows["outbox"]) == Counter(
        f"batch-{i}@customer.test" for i in range(4))


def test_the_same_mail_twice_in_one_batch_is_stored_once(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    pipeline, spool = _pipeline(settings)
    raw = make_mail(message_id="<twice-in-a-batch@customer.test>").as_bytes()
    spool.put(raw, ENVELOPE)
    spool.put(b"Received: from mx2.customer.test by mx; Mon, 1 Jan 2026\r\n" + raw, ENVELOPE)

    outcomes = pipeline.process_batch()

    assert [o.kind for o in outcomes] == ["stored", "duplicate"]
    assert outcomes[1].detail.startswith("duplicate of message ")
    rows = _rows(settings)
    assert len(rows["messages"]) == 1 and len(rows["outbox"]) == 1


def test_a_batch_processed_again_after_its_commit_writes_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    """A crash after the commit and before the spool entries are deleted: on restart the
    same entries come back (spool.recover), and each is found stored by its dedupe key."""
    settings = make_settings()
    pipeline, spool = _pipeline(settings)
    raws = _spool_mails(spool, [f"mail {i}" for i in range(6)])
    assert [o.kind for o in pipeline.process_batch()] == ["stored"] * 6
    before = _rows(settings)

    for raw in raws.values():  # the entries as the crash would have left them
        spool.put(raw, ENVELOPE)
    outcomes: list[Outcome] = pipeline.process_batch()

    assert [o.kind for o in outcomes] == ["duplicate"] * 6
    after = _rows(settings)
    assert {k: len(v) for k, v in after.items()} == {k: len(v) for k, v in before.items()}
    assert spool.pending() == [] and spool_entries(settings, "work") == []


def test_a_batch_is_capped_by_count_and_what_is_left_waits_for_the_next(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    pipeline, spool = _pipeline(settings)
    _spool_mails(spool, [f"mail {i}" for i in range(5)])
    assert [o.kind for o in pipeline.process_batch(limit=3)] == ["stored"] * 3
    assert len(spool.pending()) == 2
    assert [o.kind for o in pipeline.process_batch(limit=3)] == ["stored"] * 2
    assert pipeline.process_batch() == []
