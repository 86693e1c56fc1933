"""Full-text search (helpdesk.store.search, `helpdesk search`): mail stored by the real
pipeline is found by words of its body, subject, sender and attachment names; notes too;
filters narrow; hostile queries and hostile mail are harmless. Every test runs on SQLite
and on PostgreSQL (the database_url fixture)."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.pipeline import Pipeline
from helpdesk.spool import Envelope, Spool
from helpdesk.store import db, search
from helpdesk.store.search import Filters
from tests import agent_mails
from tests.agent_desk import reply_to, wait_mails_to, write_agents
from tests.conftest import MakeSettings
from tests.helpers import (
    DaemonThread,
    RelaySink,
    engine_for,
    invoke_cli,
    make_mail,
    send,
    wait_until,
)


def _deliver(settings: Settings, *mails: EmailMessage) -> None:
    """Through the spool and the pipeline, as the SMTP listener hands mail over."""
    db.upgrade(settings.database_url)
    spool = Spool(settings.data_dir / "spool")
    for msg in mails:
        sender = msg["From"].addresses[0].addr_spec
        spool.put(msg.as_bytes(), Envelope("smtp", sender, (str(msg["To"]),)))
    Pipeline(settings, engine_for(settings), spool).drain()


def _find(settings: Settings, query: str, filters: Filters | None = None,
          **kw: Any) -> list[search.Hit]:
    with db.snapshot_scope(engine_for(settings)) as session:
        return search.search(session, query, filters, **kw)


def _tickets(hits: list[search.Hit]) -> list[int]:
    return [h.ticket_id for h in hits]


def _with_attachment(msg: EmailMessage, name: str) -> EmailMessage:
    msg.add_attachment(b"col1,col2\n1,2\n", maintype="text", subtype="csv", filename=name)
    return msg


@pytest.fixture
def stocked(make_settings: MakeSettings) -> Settings:
    """HD-1 printer (carol), HD-2 invoice with an attachment (dave, billing queue),
    HD-3 hostile HTML-ish text mentioning an invoice in the body (erin)."""
    settings = make_settings()
    _deliver(settings,
             make_mail(subject="Printer on fire",
                       body="Help, the printer in room 4 is flooded with toner."),
             _with_attachment(make_mail(sender="Dave Other <dave@other.test>",
                                        to="billing@example.test", subject="Invoice overdue",
                                        body="Please send the paperwork again."),
                              "quarterly-report.xlsx"),
             make_mail(sender="erin@third.test", subject="Question",
                       body="Lorem ipsum <script>alert('x')</script> the invoice "
                            "<b onmouseover=steal()>total</b> is wrong. \x02fake\x03 mark"))
    return settings


def test_mail_is_found_by_body_subject_sender_and_attachment_name(stocked: Settings) -> None:
    assert _tickets(_find(stocked, "flooded")) == [1]
    assert _tickets(_find(stocked, "TONER room")) == [1]  # all words, any case
    assert _tickets(_find(stocked, "printer fire")) == [1]
    assert _tickets(_find(stocked, "overdue")) == [2]
    assert _tickets(_find(stocked, "dave@other.test")) == [2]
    assert _tickets(_find(stocked, "Dave Other")) == [2]
    assert _tickets(_find(stocked, "quarterly-report.xlsx")) == [2]
    assert _tickets(_find(stocked, "quarter*")) == [2]
    assert _tickets(_find(stocked, '"room 4 is flooded"')) == [1]
    assert _find(stocked, '"flooded is"') == []  # a phrase keeps its order
    assert _find(stocked, "flooded overdue") == []  # every word must appear
    assert _find(stocked, "zebra") == []


def test_the_subject_match_ranks_first(stocked: Settings) -> None:
    hits = _find(stocked, "invoice")
    assert _tickets(hits) == [2, 3]  # subject of HD-2 before the body of HD-3
    assert hits[0].rank > hits[1].rank


def test_filters_narrow_the_search(stocked: Settings) -> None:
    assert _tickets(_find(stocked, "invoice", Filters(queues=["billing"]))) == [2]
    assert _tickets(_find(stocked, "invoice", Filters(queues=["support"]))) == [3]
    assert _tickets(_find(stocked, "invoice", Filters(customer="THIRD.test"))) == [3]
    assert _tickets(_find(stocked, "invoice", Filters(statuses=["new"]))) == [2, 3]
    assert _find(stocked, "invoice", Filters(statuses=["open", "closed"])) == []
    assert _find(stocked, "invoice", Filters(assignees=["alice"])) == []
    assert _tickets(_find(stocked, "invoice", Filters(ticket_id=3))) == [3]
    now = clock.now()
    assert _tickets(_find(stocked, "invoice", Filters(since=now - timedelta(hours=1),
                                                      until=now + timedelta(hours=1)))) == [2, 3]
    assert _find(stocked, "invoice", Filters(since=now + timedelta(hours=1))) == []
    assert _find(stocked, "invoice", Filters(until=now - timedelta(hours=1))) == []


def test_pages_follow_the_cursor(stocked: Settings) -> None:
    first = _find(stocked, "invoice", limit=1)
    second = _find(stocked, "invoice", limit=1, cursor=first[-1].cursor)
    rest = _find(stocked, "invoice", limit=1, cursor=second[-1].cursor)
    assert (_tickets(first), _tickets(second), rest) == ([2], [3], [])
    for cursor in ("x", "-1", "²", "9" * 40, " 1"):  # from a URL: never an error
        assert isinstance(_find(stocked, "invoice", limit=1, cursor=cursor), list)


@pytest.mark.parametrize("query", [
    '"', '""', "*", "AND(", "invoice AND(", 'in"voice', "NEAR(a b", "a OR", "-", "^x", "x:y",
    "!!", "a & | b", "':*", "\\", "(((", "invoice*)", "\x00", "ü" * 3000, "a " * 500,
    "col1:invoice", "{subject body}: x", "NOT", "'", "%", "_",
])
def test_hostile_queries_do_not_raise(stocked: Settings, query: str) -> None:
    hits = _find(stocked, query)
    assert isinstance(hits, list)
    if "invoice" in query:
        assert {2, 3} >= set(_tickets(hits))


def test_random_hostile_queries_do_not_raise(stocked: Settings) -> None:
    rng = random.Random(15)
    alphabet = ['"', "'", "*", "(", ")", "&", "|", "!", ":", "^", "-", "+", "~", "<", ">",
                "\\", "{", "}", " ", "NEAR", "AND", "OR", "NOT", "invoice", "ü", "0", "_",
                "%", ",", ".", "@", "\t", "\u202e", "<->", ":*", "$$"]
    with db.snapshot_scope(engine_for(stocked)) as session:
        for _ in range(300):
            query = "".join(rng.choices(alphabet, k=rng.randint(1, 12)))
            assert isinstance(search.search(session, query), list), query


def test_snippets_are_segments_and_escape_the_mail(stocked: Settings) -> None:
    (hit,) = _find(stocked, "total")
    assert [s.text for s in hit.snippet if s.match] == ["total"]
    html = str(hit.snippet_html())
    # nothing from the mail is markup: the only tags are our own <mark>s
    assert "<" not in html.replace("<mark>", "").replace("</mark>", ""), html
    assert "&lt;b onmouseover=steal()&gt;" in html
    assert html.count("<mark>") == 1 and "<mark>total</mark>" in html  # \x02 faked none
    assert all("\x02" not in s.text and "\x03" not in s.text for s in hit.snippet)


def test_notes_and_agent_replies_are_found(make_settings: MakeSettings, tmp_path: Path) -> None:
    write_agents(tmp_path)
    settings = make_settings()
    _deliver(settings, make_mail(subject="Broken VPN", body="The VPN drops every hour."))
    note = invoke_cli(settings, "tickets", "note", "HD-1", "--as", "alice",
                      "-m", "Looks like the zeppelin firmware again.")
    assert note.exit_code == 0, note.output
    reply = invoke_cli(settings, "tickets", "reply", "HD-1", "--as", "alice",
                       "-m", "Please try the marmalade client.")
    assert reply.exit_code == 0, reply.output
    (hit,) = _find(settings, "zeppelin")
    assert (hit.ticket_id, hit.internal) == (1, True)
    assert abs(hit.at - clock.now()) < timedelta(minutes=5)
    (hit,) = _find(settings, "marmalade")
    assert (hit.ticket_id, hit.direction) == (1, "out")


def test_the_cli_prints_hits(stocked: Settings) -> None:
    result = invoke_cli(stocked, "search", "flooded")
    assert result.exit_code == 0, result.output
    assert "HD-1" in result.output and "[flooded]" in result.output
    result = invoke_cli(stocked, "search", "invoice", "--queue", "billing", "--limit", "5")
    assert "HD-2" in result.output and "HD-3" not in result.output
    result = invoke_cli(stocked, "search", "invoice", "--status", "open")
    assert result.exit_code == 0 and "HD-" not in result.output
    result = invoke_cli(stocked, "search", "flooded", "--json")
    (hit,) = json.loads(result.output)
    assert hit["ticket"] == "HD-1" and {"text": "flooded", "match": True} in hit["snippet"]
    result = invoke_cli(stocked, "search", 'AND( "', "--json")
    assert result.exit_code == 0 and result.output.strip() == "[]"


def test_the_migration_indexes_existing_mail(stocked: Settings) -> None:
    from alembic import command

    cfg = db.alembic_config(stocked.database_url)
    command.downgrade(cfg, "0003_scheduler")
    engine_for(stocked).dispose()
    command.upgrade(cfg, "head")
    assert _tickets(_find(stocked, "flooded")) == [1]
    assert _tickets(_find(stocked, "quarterly")) == [2]


def test_a_deleted_message_leaves_the_index(stocked: Settings) -> None:
    (hit,) = _find(stocked, "flooded")
    with db.session_scope(engine_for(stocked)) as session:
        session.execute(text("DELETE FROM message WHERE id = :id"), {"id": hit.message_id})
    assert _find(stocked, "flooded") == []
    if stocked.database_url.startswith("sqlite"):
        with db.session_scope(engine_for(stocked)) as session:
            session.execute(text("INSERT INTO message_search(message_search, rank) "
                                 "VALUES ('integrity-check', 1)"))


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_helpdesk_moved_to_postgresql_is_searchable(stocked: Settings, pg_url: str) -> None:
    from helpdesk.store import migrate

    migrate.migrate(stocked.database_url, pg_url)
    engine = db.make_engine(pg_url)
    try:
        with db.session_scope(engine) as session:
            assert [h.ticket_id for h in search.search(session, "quarterly")] == [2]
    finally:
        engine.dispose()


def test_an_agents_note_by_mail_is_indexed_without_the_quoted_notification(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    send(daemon.port, make_mail(subject="Smell", body="The flux capacitor smells of ozone."))
    notification = wait_mails_to(relay, "alice@staff.test", 1)[0]
    to = reply_to(notification)
    raw = agent_mails.gmail(typed="#note\n\nChecked the fuser unit.",
                            sender="Alice <alice@staff.test>", to=to, original=notification)
    send(daemon.port, raw, sender="alice@staff.test", rcpts=[to])
    (note,) = wait_until(lambda: _find(settings, "fuser"), what="the note indexed")
    assert (note.ticket_id, note.internal) == (1, True)
    # the notification quoted in alice's mail is not what was kept, so not what is found
    assert [h.internal for h in _find(settings, "capacitor")] == [False]
