"""The knowledge base's figures for `helpdesk stats` and `helpdesk kb stats`: open
post-mortems, articles by status, and by article the customers who said it solved
their problem (deflections) and the "did this help?" answers. Pure reads."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlmodel import Session, col, select

from helpdesk.config.settings import Settings
from helpdesk.kb import postmortem
from helpdesk.store.kb_models import KbArticle


def figures(session: Session, settings: Settings) -> dict[str, Any]:
    rows = session.exec(select(KbArticle).order_by(col(KbArticle.deflections).desc(),
                                                   KbArticle.id)).all()
    return {
        "open_postmortems": postmortem.open_count(session, settings),
        "articles": dict(Counter(a.status for a in rows)),
        "deflections": sum(a.deflections for a in rows),
        "by_article": [{"id": a.id, "title": a.title, "deflections": a.deflections,
                        "helpful": a.helpful, "unhelpful": a.unhelpful}
                       for a in rows if a.status == "published"],
    }


def lines(kb: dict[str, Any], *, per_article: bool) -> list[str]:
    """The figures as `helpdesk stats` prints them."""
    counts = ", ".join(f"{k} {v}" for k, v in sorted(kb["articles"].items())) or "none"
    out = [f"knowledge base: {counts}; {kb['deflections']} tickets solved by an article; "
           f"open post-mortems {kb['open_postmortems']}"]
    if per_article:
        for a in kb["by_article"]:
            out.append(f"  #{a['id']:<5} solved {a['deflections']:<4} helped {a['helpful']:<4} "
                       f"did not {a['unhelpful']:<4} {a['title']}")
    return out
