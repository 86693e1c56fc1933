"""Deflection: the published public articles that match a new ticket's mail, with a
signed link per article that lets the customer say "this solved my problem", which
resolves the ticket and counts for the article.

`for_ticket(session, settings, ticket, limit=3)` is what other pages (the customer's
status page) call; `for_text` does the work for any text (the acknowledgement has the
mail in hand). The full-text index finds the candidates (kb.search.related); each is
ranked by the share of the significant words of its title and question that the mail
contains, so [kb] suggest_min_rank means the same on SQLite and PostgreSQL.

A link's token (itsdangerous, salted for this use, timed by helpdesk.clock) carries
the ticket and the article: it cannot be moved to another ticket or article, and is
refused after [kb] link_valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.timed import TimestampSigner
from sqlmodel import Session

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.kb import articles
from helpdesk.kb import search as kb_search
from helpdesk.store.kb_models import KbArticle
from helpdesk.store.models import Ticket

CANDIDATES = 20
_SALT = "helpdesk.kb.solved"


@dataclass(frozen=True)
class Suggestion:
    article: KbArticle
    rank: float  # 0..1: the share of the article's question words the mail has


def _rank(mail_words: set[str], article: KbArticle) -> float:
    wanted = set(kb_search.significant_words(f"{article.title}\n{article.question}"))
    return len(wanted & mail_words) / len(wanted) if wanted else 0.0


def for_text(session: Session, settings: Settings, text: str,
             limit: int | None = None) -> list[Suggestion]:
    """Up to `limit` ([kb] suggest_limit) articles for `text`, best first."""
    limit = settings.kb.suggest_limit if limit is None else limit
    words = kb_search.significant_words(text)
    if limit <= 0 or not words:
        return []
    found = []
    for hit in kb_search.related(session, words, CANDIDATES):
        article = session.get(KbArticle, hit.article_id)
        if article is not None:
            rank = _rank(set(words), article)
            if rank >= settings.kb.suggest_min_rank:
                found.append(Suggestion(article, rank))
    found.sort(key=lambda s: (-s.rank, s.article.id or 0))
    return found[:limit]


def ticket_text(session: Session, ticket: Ticket) -> str:
    first = articles.first_customer_message(session, int(ticket.id or 0))
    return f"{ticket.subject}\n{first.body_text if first else ''}"


def for_ticket(session: Session, settings: Settings, ticket: Ticket,
               limit: int = 3) -> list[Suggestion]:
    """The articles suggested for `ticket` (its subject and first mail)."""
    return for_text(session, settings, ticket_text(session, ticket), limit)


class _ClockSigner(TimestampSigner):
    """Timestamps from helpdesk.clock, so tests move time as they do for every timer."""

    def get_timestamp(self) -> int:
        return int(clock.now().timestamp())


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret, salt=_SALT, signer=_ClockSigner)


def token(settings: Settings, ticket_id: int, article_id: int) -> str:
    return str(_serializer(settings).dumps([ticket_id, article_id]))


def check_token(settings: Settings, tok: str, article_id: int) -> tuple[str, int]:
    """("ok", ticket id), ("expired", 0) or ("bad", 0) for a link's token on this article."""
    try:
        value: Any = _serializer(settings).loads(
            tok, max_age=int(settings.kb.link_valid.total_seconds()))
    except SignatureExpired:
        return "expired", 0
    except BadSignature:
        return "bad", 0
    ok = isinstance(value, list) and len(value) == 2 and value[1] == article_id \
        and isinstance(value[0], int)
    return ("ok", value[0]) if ok else ("bad", 0)


def link(settings: Settings, ticket_id: int, article_id: int) -> str:
    tok = token(settings, ticket_id, article_id)
    return f"{settings.public_base_url()}/kb/{article_id}?t={tok}"


def for_acknowledgement(session: Session, settings: Settings, ticket: Ticket,
                        text: str) -> list[dict[str, str]]:
    """What the acknowledgement lists: title and signed link of each suggestion; none
    when the public KB is off (its links would lead nowhere)."""
    if not settings.kb.enabled:
        return []
    number = int(ticket.id or 0)
    return [{"title": s.article.title, "url": link(settings, number, int(s.article.id or 0))}
            for s in for_text(session, settings, text)]
