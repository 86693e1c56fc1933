"""The public knowledge base under /kb on the public listener ([kb] enabled): the
categories, search (kb.search, the desk's full-text machinery), and article pages with
"did this help?" and, from an acknowledgement's signed link, "this solved my problem".

Only published public articles exist here: any other id is the 404 page, as a wrong
one. A GET changes nothing (mail scanners open every link): both answers are POSTs,
checked by the same CSRF guard as the desk (its cookie scoped to /kb), and "solved"
checks its link's token again (kb.suggest) before anything is written. Pages are plain
HTML from templates/kb/ with the desk's strict CSP; no script.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Engine, func
from sqlmodel import Session, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from helpdesk.config.settings import Settings
from helpdesk.kb import articles, feedback, suggest
from helpdesk.kb import search as kb_search
from helpdesk.store import attempts
from helpdesk.store.db import session_scope
from helpdesk.store.kb_models import KbArticle, KbDeflection
from helpdesk.web import csrf, pages
from helpdesk.web.context import secure_cookie

MAX_ID = 2**31 - 1
MAX_QUERY = 200
_NO_SESSION = "hd_kb_none"  # the public pages have no sign-in: the CSRF cookie is the basis
_VOTES, _VOTES_SALT = "hd_kb_votes", "helpdesk.kb.votes"
MAX_VOTES_KEPT = 50  # articles a browser's cookie remembers answering
VOTES_PER_HOUR = 30  # new answers counted per client IP and hour
log = logging.getLogger("helpdesk.web.kb_public")


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    values = {"helpdesk_name": settings.helpdesk.name,
              "csrf_token": getattr(request.state, "csrf_token", ""),
              "new_request": settings.portal.enabled and settings.web_form.enabled, **context}
    html = pages.environment(settings).get_template(f"kb/{name}.html.j2").render(values)
    return HTMLResponse(html, status_code=status, headers=pages.SECURITY_HEADERS)


def _message(request: Request, title: str, text: str, status: int) -> HTMLResponse:
    return render(request, "message", {"title": title, "text": text}, status)


def _engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


def _in_session(request: Request, work: Any, *args: Any) -> Any:
    def run() -> Any:
        with session_scope(_engine(request)) as session:
            return work(session, *args)
    return run_in_threadpool(run)


def _article_id(request: Request) -> int:
    raw = str(request.path_params["article"])
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and int(raw) <= MAX_ID):
        raise HTTPException(404)
    return int(raw)


def _categories(session: Session) -> list[tuple[str, int]]:
    rows = session.exec(select(KbArticle.category, func.count()).where(
        KbArticle.status == "published", KbArticle.visibility == "public")
        .group_by(KbArticle.category).order_by(KbArticle.category)).all()
    return [(c or "", int(n)) for c, n in rows]


async def home(request: Request) -> Response:
    def work(session: Session) -> dict[str, Any]:
        return {"categories": _categories(session),
                "latest": articles.listing(session, status="published", public_only=True)[:10]}
    return render(request, "home", await _in_session(request, work))


async def category(request: Request) -> Response:
    name = request.path_params["name"]

    def work(session: Session) -> list[KbArticle]:
        return articles.listing(session, status="published", public_only=True, category=name)
    found = await _in_session(request, work)
    if not found:
        raise HTTPException(404)
    return render(request, "category", {"category": name, "articles": found})


async def search_page(request: Request) -> Response:
    query = request.query_params.get("q", "")[:MAX_QUERY]

    def work(session: Session) -> list[KbArticle]:
        hits = kb_search.search(session, query, public_only=True)
        return [a for h in hits if (a := articles.public(session, h.article_id))]
    return render(request, "search", {"q": query, "articles": await _in_session(request, work)})


def _link_state(session: Session, settings: Settings, tok: str, article_id: int) -> str:
    """What the article page offers for a suggestion link: solved, expired, bad, done."""
    if not tok:
        return ""
    state, ticket_id = suggest.check_token(settings, tok, article_id)
    if state == "ok" and session.get(KbDeflection, ticket_id) is not None:
        return "done"
    return state


async def article_page(request: Request) -> Response:
    number, tok = _article_id(request), request.query_params.get("t", "")[:500]
    settings: Settings = request.app.state.settings

    def work(session: Session) -> tuple[KbArticle | None, str]:
        return articles.public(session, number), _link_state(session, settings, tok, number)
    article, link = await _in_session(request, work)
    if article is None:
        raise HTTPException(404)
    return render(request, "article", {"article": article, "t": tok, "link": link,
                                       "voted": request.query_params.get("voted") == "1"})


def _votes_signer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.secret, salt=_VOTES_SALT)


def _votes(request: Request) -> dict[str, bool]:
    """This browser's answers so far, article id -> helped, from its signed cookie."""
    settings: Settings = request.app.state.settings
    try:
        given = _votes_signer(settings).loads(
            request.cookies.get(_VOTES, ""))
    except BadSignature:
        return {}
    return {str(k): bool(v) for k, v in given.items()} if isinstance(given, dict) else {}


async def vote(request: Request) -> Response:
    """Each browser counts once per article, with its latest answer (a signed cookie says
    what it answered); a client IP's new answers are bounded per hour (in the database),
    so pressing again, or a script, does not stuff the counts."""
    number = _article_id(request)
    form = await request.form()
    helped = form.get("helped")
    if helped not in ("yes", "no"):
        return _message(request, "Please choose", "Say whether the article helped.", 400)
    settings: Settings = request.app.state.settings
    votes = _votes(request)
    before = votes.get(str(number))
    client = request.client.host if request.client else ""

    def work(session: Session) -> bool:
        if articles.public(session, number) is None:
            return False
        if before is None and not attempts.allow(
                session, settings, [("kb-vote", client, VOTES_PER_HOUR)], attempts.HOUR,
                count_refused=False):
            log.info("kb: vote on article %s from %s not counted: over %s an hour",
                     number, client, VOTES_PER_HOUR)
            return True
        feedback.vote(session, number, helped == "yes", before)
        return True
    if not await _in_session(request, work):
        raise HTTPException(404)
    tok = form.get("t")
    keep = f"&t={quote(tok)}" if isinstance(tok, str) and tok else ""
    response = RedirectResponse(f"/kb/{number}?voted=1{keep}", 303)
    votes.pop(str(number), None)
    votes[str(number)] = helped == "yes"  # newest last: the oldest go first past the cap
    kept = dict(list(votes.items())[-MAX_VOTES_KEPT:])
    response.set_cookie(_VOTES, _votes_signer(settings).dumps(kept),
                        max_age=365 * 86400, path="/kb", httponly=True, samesite="lax",
                        secure=secure_cookie(settings))
    return response


async def solved(request: Request) -> Response:
    number = _article_id(request)
    form = await request.form()
    tok = form.get("t")
    settings: Settings = request.app.state.settings
    state, ticket_id = suggest.check_token(settings, tok if isinstance(tok, str) else "",
                                           number)
    if state == "expired":
        return _message(request, "This link has expired", "Links in our mail work for a "
                        "limited time. To tell us your problem is solved, reply to our mail.",
                        410)
    if state != "ok":
        return _message(request, "This link is not valid", "The link was changed or "
                        "belongs to another article. Please use it as it was mailed.", 403)

    def work(session: Session) -> str:
        article = articles.public(session, number)
        return feedback.solved(session, ticket_id, article) if article else "unknown"
    outcome = await _in_session(request, work)
    if outcome == "unknown":
        raise HTTPException(404)
    prefix = settings.helpdesk.ticket_prefix
    return _message(request, "Thank you", f"We are glad the article helped. Ticket "
                    f"{prefix}-{ticket_id} is resolved; if anything is still wrong, reply "
                    "to our mail and it opens again.", 200)


async def stylesheet(request: Request) -> Response:
    env = pages.environment(request.app.state.settings)
    source = env.loader.get_source(env, "kb/kb.css")[0]  # type: ignore[union-attr]
    return Response(source, media_type="text/css",
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


def _refusal(request: Request, status: int) -> ASGIApp:
    if status == 413:
        return _message(request, "Too much data", "The form was too large.", 413)
    return _message(request, "This form has expired",
                    "Go back, reload the page and try again.", 403)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return _message(request, "Not found", "There is no such article here.", 404)
    if status == 405:
        return _message(request, "Not allowed", "This page does not take that.", 405)
    return _message(request, "Something went wrong", "Please try again.", status)


ROUTES = [
    Route("/", home, methods=["GET"]),
    Route("/kb.css", stylesheet, methods=["GET"]),
    Route("/search", search_page, methods=["GET"]),
    Route("/category/{name:path}", category, methods=["GET"]),
    Route("/{article}", article_page, methods=["GET"]),
    Route("/{article}/helped", vote, methods=["POST"]),
    Route("/{article}/solved", solved, methods=["POST"]),
]


def app(settings: Settings, engine: Engine) -> Starlette:
    """The public KB, mounted at /kb by web/app.py public_routes."""
    kb = Starlette(
        routes=ROUTES,
        middleware=[Middleware(csrf.CsrfGuard, key=settings.secret,  # type: ignore[arg-type]
                               session_cookie=_NO_SESSION, cookie_path="/kb",
                               secure=settings.http.public_url.startswith("https:"),
                               refuse=_refusal)],
        exception_handlers={HTTPException: _http_error})
    kb.state.settings, kb.state.engine = settings, engine
    return kb
