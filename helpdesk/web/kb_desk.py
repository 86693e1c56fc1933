"""The desk's knowledge-base pages under /desk/kb: the list (drafts, published, open
post-mortems), an article's edit form with its personal-data flags, publishing (leads),
and a ticket's post-mortem form.

As every desk route: signed in (auth), CSRF (the desk's middleware), permission (a
draft belongs to its ticket: an agent who may not see the ticket gets the 404 page for
its draft too; publishing is a lead's), and the article's version (its updated_at: a
form drawn before someone else's save is a 409 with the fresh article, the typed text
kept). Drafting from a ticket is the #kb command (the ticket page's "Draft KB article"
button posts it).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from helpdesk.kb import articles, postmortem
from helpdesk.store import queries
from helpdesk.store.db import session_scope
from helpdesk.store.kb_models import KbArticle
from helpdesk.web import access, auth, pages
from helpdesk.web.auth import SignedIn


def render(request: Request, name: str, context: dict[str, Any],
           status: int = 200) -> HTMLResponse:
    """A desk page from templates/kb/ (pages.page renders templates/web/ only)."""
    settings = auth.ctx(request).settings
    values = {"helpdesk_name": settings.helpdesk.name,
              "csrf_token": getattr(request.state, "csrf_token", ""),
              "who": getattr(request.state, "who", None), **context}
    html = pages.environment(settings).get_template(f"kb/{name}.html.j2").render(values)
    return HTMLResponse(html, status_code=status, headers=pages.SECURITY_HEADERS)


def _version(article: KbArticle) -> str:
    return article.updated_at.isoformat()


def _article(session: Session, request: Request, who: SignedIn) -> KbArticle:
    """The article of the path, if `who` may see it; else the 404 page."""
    number = access.path_number(request, "article")
    article = session.get(KbArticle, number) if number else None
    if article is None:
        raise HTTPException(404)
    if article.status == "draft" and article.ticket_id is not None and access.visible_ticket(
            session, auth.ctx(request).settings, who, article.ticket_id) is None:
        raise HTTPException(404)
    return article


def _in_session(request: Request, work: Any) -> Any:
    def run() -> Any:
        with session_scope(auth.ctx(request).engine) as session:
            return work(session)
    return run_in_threadpool(run)


@auth.signed_in()
async def listing(request: Request, who: SignedIn) -> Response:
    settings = auth.ctx(request).settings

    def work(session: Session) -> dict[str, Any]:
        drafts = [a for a in articles.listing(session, status="draft")
                  if a.ticket_id is None or access.visible_ticket(
                      session, settings, who, a.ticket_id) is not None]
        due = [t for t in postmortem.open_tickets(session, settings)
               if access.may_see(settings, who, t)]
        return {"drafts": drafts, "published": articles.listing(session, status="published"),
                "postmortems": due}
    return render(request, "desk_list", await _in_session(request, work))


def _edit_context(session: Session, article: KbArticle, **more: Any) -> dict[str, Any]:
    pm = postmortem.of(session, article.ticket_id) if article.ticket_id else None
    return {"article": article, "version": _version(article), "postmortem": pm,
            "visibilities": articles.VISIBILITIES, "kept": {}, "error": "", **more}


@auth.signed_in()
async def edit_page(request: Request, who: SignedIn) -> Response:
    def work(session: Session) -> dict[str, Any]:
        return _edit_context(session, _article(session, request, who))
    return render(request, "desk_article", await _in_session(request, work))


def _fields(form: FormData) -> articles.Fields:
    def text(name: str) -> str:
        value = form.get(name, "")
        return value.replace("\r\n", "\n") if isinstance(value, str) else ""
    visibility = text("visibility")
    return articles.Fields(
        title=text("title"), question=text("question"), resolution=text("resolution"),
        category=text("category"), tags=articles.clean_tags(text("tags")),
        visibility=visibility if visibility in articles.VISIBILITIES else "internal")


def _kept(fields: articles.Fields) -> dict[str, str]:
    return {**fields.__dict__, "tags": " ".join(fields.tags)}


@auth.signed_in()
async def save(request: Request, who: SignedIn) -> Response:
    form = await request.form()
    fields, version = _fields(form), str(form.get("version", ""))
    settings = auth.ctx(request).settings

    def work(session: Session) -> Response | None:
        article = _article(session, request, who)
        if version != _version(article):
            return render(request, "desk_article", _edit_context(
                session, article, kept=_kept(fields), error="Someone saved this article since you "
                "opened it: this is their version, your text is below it."), 409)
        if article.status == "published" and not who.has_role("lead"):
            raise auth.Forbidden  # what the public reads changes by a lead's hand only
        if not fields.title.strip():
            return render(request, "desk_article", _edit_context(
                session, article, error="The title is empty."), 422)
        articles.save(session, settings, article, fields)
        if article.status == "published" and article.flags:
            found = ", ".join(f["text"] for f in article.flags[:5])
            session.rollback()  # published text never gets personal data back
            return render(request, "desk_article", _edit_context(
                session, session.get(KbArticle, article.id), kept=_kept(fields),
                error=f"Not saved: the new text has personal data ({found})."), 422)
        return None
    refused = await _in_session(request, work)
    return refused or RedirectResponse(f"/desk/kb/{request.path_params['article']}", 303)


@auth.signed_in("lead")
async def publish(request: Request, who: SignedIn) -> Response:
    form = await request.form()
    version = str(form.get("version", ""))

    def work(session: Session) -> Response | None:
        article = _article(session, request, who)
        if version != _version(article):
            return render(request, "desk_article", _edit_context(
                session, article, error="The article changed since you opened it; "
                "read it again before publishing."), 409)
        try:
            articles.publish(session, article, lead=who.agent.name)
        except articles.NotPublishable as err:
            return render(request, "desk_article", _edit_context(
                session, article, error=str(err)), 422)
        return None
    refused = await _in_session(request, work)
    return refused or RedirectResponse(f"/desk/kb/{request.path_params['article']}", 303)


def _ticket(session: Session, request: Request, who: SignedIn):  # type: ignore[no-untyped-def]
    ticket = access.visible_ticket(session, auth.ctx(request).settings, who,
                                   access.path_number(request, "number"))
    if ticket is None:
        raise HTTPException(404)
    return ticket


@auth.signed_in()
async def postmortem_page(request: Request, who: SignedIn) -> Response:
    settings = auth.ctx(request).settings

    def work(session: Session) -> dict[str, Any]:
        ticket = _ticket(session, request, who)
        kept = postmortem.of(session, int(ticket.id or 0))
        parts = postmortem.parse(postmortem.template(settings, ticket)) if kept is None \
            else {p: getattr(kept, p) for p in postmortem.PARTS}
        return {"ticket": ticket, "parts": parts, "kept": kept,
                "prefix": settings.helpdesk.ticket_prefix,
                "version": queries.ticket_version(session, int(ticket.id or 0))}
    return render(request, "desk_postmortem", await _in_session(request, work))


@auth.signed_in()
async def postmortem_save(request: Request, who: SignedIn) -> Response:
    form = await request.form()
    parts = {p: str(form.get(p, "")).replace("\r\n", "\n") for p in postmortem.PARTS}
    version = str(form.get("version", ""))

    def work(session: Session) -> Response:
        ticket = _ticket(session, request, who)
        number = int(ticket.id or 0)
        if version != queries.ticket_version(session, number):
            return render(request, "desk_postmortem", {
                "ticket": ticket, "parts": parts, "kept": postmortem.of(session, number),
                "prefix": auth.ctx(request).settings.helpdesk.ticket_prefix,
                "version": queries.ticket_version(session, number),
                "error": "The ticket changed since you opened this form: read it again; "
                         "your text is kept below."}, 409)
        postmortem.keep(session, ticket, parts, by=who.agent.name)
        return RedirectResponse(f"/desk/ticket/{number}", 303)
    return await _in_session(request, work)  # type: ignore[no-any-return]


ROUTES = [
    Route("/kb/", listing, methods=["GET"]),
    Route("/kb/{article:int}", edit_page, methods=["GET"]),
    Route("/kb/{article:int}", save, methods=["POST"]),
    Route("/kb/{article:int}/publish", publish, methods=["POST"]),
    Route("/kb/postmortem/{number:int}", postmortem_page, methods=["GET"]),
    Route("/kb/postmortem/{number:int}", postmortem_save, methods=["POST"]),
]
