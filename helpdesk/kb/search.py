"""Full-text search over KB articles, the desk's machinery (store/search.py) on its own
index `kb_search` (migration 0010_kb): FTS5 on SQLite, tsvector + GIN on PostgreSQL,
the same tokenising on both, user input never reaching either query language as syntax
(store.search.parse_query writes the query text).

Two ways to ask: `search` ANDs the words (a person's query in the search box);
`related` ORs the significant words of a customer's mail to find candidates, which
kb.suggest scores the same way on both backends (their own ranks are not comparable:
SQLite's bm25 is near zero while a word is in half the articles, as in a new KB).

Writers call `index_article` in the transaction that saves the article.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session

from helpdesk.store import search as store_search
from helpdesk.store.search import Term

TABLE = "kb_search"
SQLITE_SHADOW = tuple(f"{TABLE}_{s}" for s in ("data", "idx", "content", "docsize", "config"))
MAX_TEXT = 100_000
# words of a mail that say nothing about its problem; the rest are OR-ed for suggestions
_STOP = frozenset([
    "and", "are", "but", "can", "could", "does", "for", "from", "had", "has", "have", "hello",
    "its", "not", "our", "please", "regards", "thank", "thanks", "that", "the", "their",
    "there", "this", "was", "were", "what", "when", "which", "will", "with", "would", "you",
    "your", "dear", "best",
])
MIN_WORD, MAX_WORDS = 3, 32

_SQLITE_INSERT = (f"INSERT INTO {TABLE} (rowid, title, tags, body) SELECT a.id, a.title, "
                  "replace(replace(replace(a.tags, '[', ' '), ']', ' '), '\"', ' '), "
                  f"substr(a.question || ' ' || a.resolution, 1, {MAX_TEXT}) "
                  "FROM kb_article a WHERE {where}")


def _pg_part(expr: str, weight: str) -> str:
    words = f"regexp_replace({expr}, '[^[:alnum:]]+', ' ', 'g')"
    return f"setweight(to_tsvector('simple', {words}), '{weight}')"


_PG_UPSERT = (f"INSERT INTO {TABLE} (article_id, tsv) SELECT a.id, "
              + " || ".join([_pg_part("a.title", "A"), _pg_part("a.tags::text", "B"),
                             _pg_part(f"left(a.question || ' ' || a.resolution, {MAX_TEXT})",
                                      "D")])
              + " FROM kb_article a WHERE {where} "
              "ON CONFLICT (article_id) DO UPDATE SET tsv = EXCLUDED.tsv")


def _sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def index_article(session: Session, article_id: int | None) -> None:
    """(Re)index one article from its row, in the caller's transaction."""
    if article_id is None:
        raise ValueError("index_article needs a flushed article (it has no id yet)")
    session.flush()
    if _sqlite(session):
        session.execute(text(f"DELETE FROM {TABLE} WHERE rowid = :id"), {"id": article_id})
        session.execute(text(_SQLITE_INSERT.format(where="a.id = :id")), {"id": article_id})
    else:
        session.execute(text(_PG_UPSERT.format(where="a.id = :id")), {"id": article_id})


def rebuild(conn) -> None:  # type: ignore[no-untyped-def]
    """Index every article again (the migration, `db migrate-to`)."""
    dialect = conn.get_bind().dialect if isinstance(conn, Session) else conn.dialect
    if dialect.name == "sqlite":
        conn.execute(text(f"DELETE FROM {TABLE}"))
        conn.execute(text(_SQLITE_INSERT.format(where="1")))
    else:
        conn.execute(text(_PG_UPSERT.format(where="true")))


@dataclass(frozen=True)
class Found:
    article_id: int
    rank: float  # the backend's, higher is better; only comparable within one search


def search(session: Session, query: str, *, public_only: bool, limit: int = 20) -> list[Found]:
    """Published articles (public ones only when `public_only`) with every word of
    `query`, best first. Drafts are found in the desk's list, not here."""
    terms = store_search.parse_query(query)
    return _run(session, terms, "and", public_only, limit) if terms else []


def significant_words(text_: str) -> list[str]:
    """The words of a mail worth matching on: no short or filler words, each once."""
    words = [w for t in store_search.parse_query(text_) for w in t.words]
    kept = [w for w in dict.fromkeys(words) if len(w) >= MIN_WORD and w not in _STOP
            and not w.isdigit()]
    return kept[:MAX_WORDS]


def related(session: Session, words: Sequence[str], limit: int = 20) -> list[Found]:
    """Published public articles with any of `words` (significant_words of a customer's
    mail), best first."""
    terms = [Term((w,)) for w in words]
    return _run(session, terms, "or", True, limit) if terms and limit > 0 else []


def _run(session: Session, terms: Sequence[Term], join: str, public_only: bool,
         limit: int) -> list[Found]:
    shown = "a.status = 'published'" + (" AND a.visibility = 'public'" if public_only else "")
    if _sqlite(session):
        query = store_search.fts5_query(terms)
        if join == "or":
            query = query.replace(" AND ", " OR ")
        rows = session.execute(text(
            f"SELECT s.rowid, -bm25({TABLE}, 10.0, 4.0, 1.0) AS r FROM {TABLE} s "
            f"JOIN kb_article a ON a.id = s.rowid WHERE {TABLE} MATCH :q AND {shown} "
            "ORDER BY r DESC, s.rowid LIMIT :n"), {"q": query, "n": limit}).all()
    else:
        query = store_search.tsquery(terms)
        if join == "or":
            query = query.replace(" & ", " | ")
        rows = session.execute(text(
            f"SELECT s.article_id, ts_rank(s.tsv, to_tsquery('simple', :q)) AS r "
            f"FROM {TABLE} s JOIN kb_article a ON a.id = s.article_id "
            f"WHERE s.tsv @@ to_tsquery('simple', :q) AND {shown} "
            "ORDER BY r DESC, s.article_id LIMIT :n"), {"q": query, "n": limit}).all()
    return [Found(int(r[0]), float(r[1])) for r in rows]
