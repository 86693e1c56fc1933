"""Full-text search over messages: subjects, bodies, internal notes, addresses and
attachment names, with ticket filters. SQLite FTS5 or PostgreSQL tsvector/GIN, one interface.

The index is a table `message_search` (migration 0005_search): an FTS5 virtual table
on SQLite (rowid = message id, the text kept for snippets), a (message_id, tsvector)
table with a GIN index on PostgreSQL (snippets come from the message row). Writers call
`index_message` in the transaction that stores the message, so a committed message is
searchable and a rolled-back one never is.

Both backends see the same words: FTS5's unicode61 tokenizer splits on everything
but letters and digits, and on PostgreSQL the text is cut the same way before
`to_tsvector('simple', ...)` (its own parser would keep carol@customer.test as one word,
so a search for "carol" would miss it). No stemming on either: mail comes in any language.

User input never reaches the query languages as syntax: `parse_query` keeps only
letters and digits of each term and writes the FTS5 / tsquery text itself, so `"`, `*`,
`AND(`, `:` or `&` cannot raise a syntax error. Snippets come back as segments
(text, matched); mail text is hostile, so rendering is the caller's escaping, or
`Hit.snippet_html()` which escapes every segment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import Select, bindparam, column, func, literal_column, select, table, text
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session, col

from helpdesk.store.models import Contact, Message, Ticket
from helpdesk.store.queries import Scope, in_scope

TABLE = "message_search"
# what the migration creates besides TABLE on SQLite (FTS5's shadow tables), so that
# `db migrate-to` knows them; PostgreSQL has TABLE only
SQLITE_SHADOW = tuple(f"{TABLE}_{s}" for s in ("data", "idx", "content", "docsize", "config"))
MAX_BODY = 100_000  # characters of a body indexed: PostgreSQL's tsvector stops at 1 MB
MAX_TERMS = 32
MAX_OFFSET = 100_000
START, STOP = "\x02", "\x03"  # snippet markers; removed from indexed text, so unambiguous
_WORD = re.compile(r"[^\W_]+")
_CHUNK = re.compile(r'"([^"]*)"?|(\S+)')

_fts = table(TABLE, column("rowid"))
_pg = table(TABLE, column("message_id"), column("tsv"))


@dataclass(frozen=True)
class Term:
    """Words that must appear one after another; `prefix`: the last one may go on."""

    words: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True)
class Filters:
    """Which tickets' messages to search; empty means any. `customer` matches part of the
    customer's address, any case (as `tickets list --customer`); since/until bound the
    message's arrival; `scope`, who is searching: only the tickets they may see."""

    statuses: Sequence[str] = ()
    queues: Sequence[str] = ()
    assignees: Sequence[str] = ()
    customer: str = ""
    since: datetime | None = None
    until: datetime | None = None
    ticket_id: int | None = None
    scope: Scope | None = None


@dataclass(frozen=True)
class Segment:
    text: str
    match: bool


@dataclass(frozen=True)
class Hit:
    ticket_id: int
    message_id: int
    rank: float  # higher is better; only comparable within one search
    snippet: tuple[Segment, ...]
    subject: str  # the ticket's
    internal: bool  # an agent's mail or note, never shown to the customer
    direction: str  # "in" (customer's or agent's mail) or "out" (what we sent)
    at: datetime  # when the message was stored
    cursor: str = field(default="")  # pass as `cursor` for the hits after this one
    internal_ticket: bool = False  # an agents-only ticket (no customer: agents/new_ticket)

    def snippet_html(self) -> Markup:
        """The snippet as safe HTML: every piece escaped, matches in <mark>."""
        return Markup("").join(Markup("<mark>%s</mark>") % s.text if s.match else escape(s.text)
                               for s in self.snippet)

    def snippet_text(self, before: str = "[", after: str = "]") -> str:
        return "".join(f"{before}{s.text}{after}" if s.match else s.text for s in self.snippet)


# -- the query language ----------------------------------------------------------------

def parse_query(query: str) -> list[Term]:
    """Words AND-ed; "quoted words" a phrase; `word*` a prefix. Anything else in the
    input (operators, brackets, quotes, punctuation) only separates words, so
    carol@customer.test is the phrase carol customer test, as the index has it."""
    terms: list[Term] = []
    for m in _CHUNK.finditer(query):
        phrase, chunk = m.group(1), m.group(2)
        words = tuple(w.lower() for w in _WORD.findall(phrase if phrase is not None else chunk))
        if words:
            terms.append(Term(words, prefix=chunk is not None and chunk.endswith("*")))
    return terms[:MAX_TERMS]


def fts5_query(terms: Sequence[Term]) -> str:
    # words are letters and digits only: a double-quoted FTS5 string cannot be broken out of
    return " AND ".join('"' + " ".join(t.words) + '"' + ("*" if t.prefix else "")
                        for t in terms)


def tsquery(terms: Sequence[Term]) -> str:
    def one(t: Term) -> str:
        parts = [f"'{w}'" for w in t.words]
        if t.prefix:
            parts[-1] += ":*"
        return "(" + " <-> ".join(parts) + ")"

    return " & ".join(one(t) for t in terms)


# -- indexing ----------------------------------------------------------------------------

def _sqlite_clean(expr: str, json: bool = False) -> str:
    """Markers out (they would fake a highlight); for to/cc, their JSON punctuation too."""
    for ch in ("char(2)", "char(3)", *(("'['", "']'", "'\"'", "','") if json else ())):
        expr = f"replace({expr}, {ch}, ' ')"
    return expr


def _pg_words(expr: str) -> str:
    return f"regexp_replace({expr}, '[^[:alnum:]]+', ' ', 'g')"


# parts of a message's text as SQL over `message m`; {agg} joins the attachments' names
_ADDRESSES = """m.from_name || ' ' || m.from_addr || ' ' || {to} || ' ' || {cc}"""
_NAMES = "coalesce((SELECT {agg} FROM attachment a WHERE a.message_id = m.id), '')"

_SQLITE_NAMES = _NAMES.format(agg="group_concat(a.filename, ' ')")
_SQLITE_ADDRESSES = _ADDRESSES.format(to='m."to"', cc="m.cc")
_SQLITE_INSERT = (
    f"INSERT INTO {TABLE} (rowid, subject, addresses, attachments, body) "
    f"SELECT m.id, {_sqlite_clean('m.subject')}, "
    f"{_sqlite_clean(_SQLITE_ADDRESSES, json=True)}, {_sqlite_clean(_SQLITE_NAMES)}, "
    f"{_sqlite_clean(f'substr(m.body_text, 1, {MAX_BODY})')} "
    "FROM message m WHERE {where}")


def _pg_part(expr: str, weight: str) -> str:
    return f"setweight(to_tsvector('simple', {_pg_words(expr)}), '{weight}')"


_PG_UPSERT = (
    f"INSERT INTO {TABLE} (message_id, tsv) SELECT m.id, "
    + " || ".join([
        _pg_part("m.subject", "A"),
        _pg_part(_ADDRESSES.format(to='m."to"::text', cc="m.cc::text"), "B"),
        _pg_part(_NAMES.format(agg="string_agg(a.filename, ' ')"), "B"),
        _pg_part(f"left(m.body_text, {MAX_BODY})", "D"),
    ])
    + " FROM message m WHERE {where} "
    "ON CONFLICT (message_id) DO UPDATE SET tsv = EXCLUDED.tsv")


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


_SQLITE_FORGET = text(f"DELETE FROM {TABLE} WHERE rowid = :id")
_SQLITE_ONE = text(_SQLITE_INSERT.format(where="m.id = :id"))
_PG_ONE = text(_PG_UPSERT.format(where="m.id = :id"))


def index_message(session: Session, message_id: int | None, *, new: bool = False,
                  flush: bool = True) -> None:
    """(Re)index one message from its stored row and attachments, in the caller's
    transaction. Call it again after changing the message's text. `new`: the message
    was inserted in this transaction, so the index has nothing of it to replace (on
    SQLite, where message ids can be reused, the trigger message_search_forget took a
    deleted message's row out with it). `flush=False`: the caller wrote the message row
    and its attachments to the database itself, so the session has nothing pending that
    the index reads (its other changes wait for the next flush)."""
    if message_id is None:
        raise ValueError("index_message needs a flushed message (it has no id yet)")
    if flush:  # the attachments and any change to the row must be in the database
        session.flush()
    conn = session.connection()  # plain statements: the session's execute adds only cost
    if conn.dialect.name == "sqlite":
        if not new:
            conn.execute(_SQLITE_FORGET, {"id": message_id})
        conn.execute(_SQLITE_ONE, {"id": message_id})
    else:
        conn.execute(_PG_ONE, {"id": message_id})


def rebuild(conn) -> None:  # type: ignore[no-untyped-def]
    """Index every message again (migration 0005 and `db migrate-to`); a Connection or
    a Session, inside its transaction."""
    dialect = conn.get_bind().dialect if isinstance(conn, Session) else conn.dialect
    if dialect.name == "sqlite":
        conn.execute(text(f"DELETE FROM {TABLE}"))
        conn.execute(text(_SQLITE_INSERT.format(where="1")))
    else:
        conn.execute(text(_PG_UPSERT.format(where="true")))


# -- searching ---------------------------------------------------------------------------

def search(session: Session, query: str, filters: Filters | None = None, limit: int = 20,
           cursor: str = "") -> list[Hit]:
    """The best `limit` messages for `query` (see parse_query), best first; `cursor`
    from the last hit of a page gives the next page. A query with no words finds nothing."""
    terms = parse_query(query)
    if not terms or limit <= 0:
        return []
    # a cursor comes back from a browser: anything but our own numbers means the first page
    offset = min(int(cursor), MAX_OFFSET) if cursor.isascii() and cursor.isdigit() else 0
    filters = filters or Filters()
    if _is_sqlite(session):
        rows = _search_sqlite(session, terms, filters, limit, offset)
    else:
        rows = _search_pg(session, terms, filters, limit, offset)
    return [Hit(ticket_id=r.ticket_id, message_id=r.message_id, rank=float(r.rank),
                snippet=segments(r.snip or ""), subject=r.subject, internal=bool(r.internal),
                internal_ticket=bool(r.ticket_internal),
                direction=r.direction, at=r.at, cursor=str(offset + i + 1))
            for i, r in enumerate(rows)]


def _where(filters: Filters) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if filters.statuses:
        clauses.append(col(Ticket.status).in_(list(filters.statuses)))
    if filters.scope is not None:
        clauses.append(in_scope(filters.scope))
    if filters.queues:
        clauses.append(col(Ticket.queue).in_(list(filters.queues)))
    if filters.assignees:
        clauses.append(col(Ticket.assignee).in_(list(filters.assignees)))
    if filters.customer:
        clauses.append(col(Ticket.contact_id).in_(
            select(Contact.id).where(col(Contact.email).icontains(filters.customer,
                                                                  autoescape=True))))
    if filters.since is not None:
        clauses.append(col(Message.created_at) >= filters.since)
    if filters.until is not None:
        clauses.append(col(Message.created_at) < filters.until)
    if filters.ticket_id is not None:
        clauses.append(col(Message.ticket_id) == filters.ticket_id)
    return clauses


# A common word is in hundreds of thousands of messages, and scoring every match (bm25,
# ts_rank read each one's index entry) takes a second; so only the newest RANKED matches
# that pass the filters are ranked, best first, and the older matches follow them newest
# first. Both parts come from an index walked newest first (FTS5's rowid order,
# message_search's primary key); with fewer matches than RANKED every match is ranked, as
# before. The cursor (an offset) counts across both parts.
RANKED = 1000


def _slices(offset: int, limit: int) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """(limit, offset) of the page among the RANKED newest matches and among the older
    ones, None where the page has none of them."""
    ranked = (min(limit, RANKED - offset), offset) if offset < RANKED else None
    taken = ranked[0] if ranked else 0
    older = (limit - taken, max(0, offset - RANKED)) if limit > taken else None
    return ranked, older


@dataclass(frozen=True)
class _Backend:
    """One backend's search as a statement: `matches` selects (message_id, score) of the
    matches that pass the filters (lower score is better); `mid` is its id column and
    `newest` what orders them newest first (the id, or an expression of it that keeps
    PostgreSQL's planner from walking the primary key for a rare word)."""

    matches: Select[Any]
    mid: ColumnElement[int]
    newest: ColumnElement[int]


def _page(session: Session, b: _Backend, limit: int, offset: int) -> list[tuple[int, float]]:
    """The page's (message_id, score), best first (see RANKED)."""
    ranked, older = _slices(offset, limit)
    found: list[tuple[int, float]] = []
    if ranked:
        # the newest first, as a subquery: the score is computed for those alone
        newest = b.matches.order_by(b.newest.desc()).limit(RANKED).subquery()
        mid, score = newest.c.message_id, newest.c.score
        found += [(int(m), float(sc)) for m, sc in session.execute(
            select(mid, score).order_by(score, mid.desc()).limit(ranked[0]).offset(ranked[1]))]
    if older:
        floor = session.execute(b.matches.with_only_columns(b.mid).order_by(b.newest.desc())
                                .offset(RANKED - 1).limit(1)).scalar()
        if floor is not None:
            found += [(int(m), float(sc)) for m, sc in session.execute(
                b.matches.where(b.mid < floor).order_by(b.newest.desc())
                .limit(older[0]).offset(older[1]))]
    return found


_SHOWN = (col(Message.ticket_id).label("ticket_id"), col(Ticket.subject).label("subject"),
          col(Message.internal).label("internal"), col(Message.direction).label("direction"),
          col(Message.created_at).label("at"), col(Ticket.internal).label("ticket_internal"))


def _rows(session: Session, found: list[tuple[int, float]], snips: dict[int, str]) -> list[_Row]:
    shown = {r[0]: r[1:] for r in session.execute(
        select(col(Message.id), *_SHOWN).join(Ticket, col(Ticket.id) == col(Message.ticket_id))
        .where(col(Message.id).in_([mid for mid, _ in found]))).all()}
    return [_Row(mid, *shown[mid], rank=-score, snip=snips.get(mid, ""))
            for mid, score in found if mid in shown]


def _search_sqlite(session: Session, terms: list[Term], filters: Filters, limit: int,
                   offset: int) -> list[_Row]:
    fts = literal_column(TABLE)
    match = text(f"{TABLE} MATCH :q").bindparams(q=fts5_query(terms))
    # column weights: subject, addresses, attachment names, body; bm25 is lower for better
    score = func.bm25(fts, 10.0, 4.0, 4.0, 1.0)
    source = _fts
    where = _where(filters)
    if where:  # the joins cost a lookup per matching message: only when filtering
        source = _fts.join(Message, col(Message.id) == _fts.c.rowid) \
            .join(Ticket, col(Ticket.id) == col(Message.ticket_id))
    found = _page(session, _Backend(
        select(_fts.c.rowid.label("message_id"), score.label("score")).select_from(source)
        .where(match, *where), _fts.c.rowid, _fts.c.rowid), limit, offset)
    if not found:
        return []
    # snippets for this page only: in the ranking query SQLite would make one per match
    snips = dict(session.execute(
        select(_fts.c.rowid, func.snippet(fts, -1, START, STOP, "…", 24))
        .where(match, _fts.c.rowid.in_([mid for mid, _ in found]))).all())  # type: ignore[arg-type]
    return _rows(session, found, snips)


@dataclass(frozen=True)
class _Row:
    message_id: int
    ticket_id: int
    subject: str
    internal: bool
    direction: str
    at: datetime
    ticket_internal: bool
    rank: float
    snip: str


_HEADLINE = (f"StartSel={START}, StopSel={STOP}, MaxWords=30, MinWords=12, MaxFragments=2, "
             'FragmentDelimiter=" … "')


def _search_pg(session: Session, terms: list[Term], filters: Filters, limit: int,
               offset: int) -> list[_Row]:
    tsq = func.to_tsquery(literal_column("'simple'::regconfig"),
                          bindparam("q", tsquery(terms)))
    score = -func.ts_rank(_pg.c.tsv, tsq)
    source = _pg.join(Message, col(Message.id) == _pg.c.message_id) \
        .join(Ticket, col(Ticket.id) == col(Message.ticket_id))
    # a prepared statement's generic plan knows neither the words nor how many messages
    # hold them, and reads the GIN index's every match of a common word: plan each
    # search. A page of hits is small work: parallel workers took longer to start (~10 ms)
    # than the rare word's whole search.
    session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    mid = _pg.c.message_id
    found = _page(session, _Backend(
        select(mid, score.label("score")).select_from(source)
        .where(_pg.c.tsv.op("@@")(tsq), *_where(filters)), mid,
        mid if _common(session, tsquery(terms)) else mid + 0), limit, offset)
    if not found:
        return []
    # headlines for this page only: ts_headline parses the whole text each time
    doc = func.translate(col(Message.subject) + "\n" + func.left(col(Message.body_text),
                                                                  MAX_BODY), START + STOP, "")
    snips = dict(session.execute(
        select(col(Message.id), func.ts_headline(literal_column("'simple'::regconfig"), doc,
                                                  tsq, bindparam("opts", _HEADLINE)))
        .where(col(Message.id).in_([mid for mid, _ in found]))).all())
    return _rows(session, found, snips)


def _common(session: Session, query: str) -> bool:
    """Whether PostgreSQL expects so many messages to match that walking the newest
    messages finds RANKED of them sooner than reading every match from the GIN index:
    more than sqrt(RANKED x messages), where the two read as many rows. Left to itself
    its planner walks for a word it has no statistics of (a rare one), and reads the
    whole table to find five."""
    plan = session.execute(text(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {TABLE} WHERE tsv @@ "
                                "to_tsquery('simple'::regconfig, :q)"), {"q": query}).scalar()
    expected = float(plan[0]["Plan"]["Plan Rows"])  # type: ignore[index]
    total = session.execute(text(f"SELECT reltuples FROM pg_class WHERE oid = '{TABLE}'"
                                 "::regclass")).scalar()
    return expected > math.sqrt(RANKED * max(0.0, float(total or 0)))


def segments(marked: str) -> tuple[Segment, ...]:
    """A marked snippet as (text, matched) pieces, whitespace runs made one space."""
    out: list[Segment] = []
    match = False
    for piece in re.split(f"([{START}{STOP}])", marked):
        if piece in (START, STOP):
            match = piece == START
            continue
        piece = re.sub(r"\s+", " ", piece)
        if piece:
            out.append(Segment(piece, match))
    if out:
        out[0] = Segment(out[0].text.lstrip(), out[0].match)
        out[-1] = Segment(out[-1].text.rstrip(), out[-1].match)
    return tuple(s for s in out if s.text)
