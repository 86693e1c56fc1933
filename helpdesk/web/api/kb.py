"""The knowledge base through the API, read-only: what the desk's knowledge-base pages
show an agent (helpdesk/web/kb_desk.py). Published articles, internal and public, are
every agent's; a draft drawn from a ticket is seen by who may see that ticket (it
quotes the customer). Articles are written by the same doors as tickets: `#kb` and
`#publish` through POST /tickets/{number}/commands.
"""

from __future__ import annotations

from sqlmodel import Session

from helpdesk.kb import articles
from helpdesk.kb import search as kb_search
from helpdesk.store.db import snapshot_scope
from helpdesk.store.kb_models import KbArticle
from helpdesk.web import access
from helpdesk.web.api import schemas
from helpdesk.web.api.auth import ApiError
from helpdesk.web.api.table import Call, Result


def _may_read(session: Session, call: Call, article: KbArticle) -> bool:
    if article.status == "published" or article.ticket_id is None:
        return True
    return access.visible_ticket(session, call.web.settings, call.caller.who,
                                 article.ticket_id) is not None


def _out(article: KbArticle) -> schemas.ArticleOut:
    return schemas.ArticleOut.model_validate(article, from_attributes=True)


def list_articles(call: Call) -> Result:
    q: schemas.ArticleQuery = call.query
    with snapshot_scope(call.web.engine) as session:
        if q.q:  # the full-text index holds published articles only
            found = [session.get(KbArticle, f.article_id)
                     for f in kb_search.search(session, q.q, public_only=False, limit=50)]
            chosen = [a for a in found if a is not None and (not q.category
                                                             or a.category == q.category)]
            if q.status == "draft":
                chosen = []
        else:
            chosen = articles.listing(session, status=q.status, category=q.category)
        items = [_out(a) for a in chosen if _may_read(session, call, a)][:200]
    return Result(schemas.ArticleList(items=items))


def show_article(call: Call) -> Result:
    with snapshot_scope(call.web.engine) as session:
        article = session.get(KbArticle, call.path["number"])
        if article is None or not _may_read(session, call, article):
            raise ApiError(404, "No such article.")
        return Result(_out(article))
