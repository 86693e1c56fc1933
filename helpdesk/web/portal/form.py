"""The public "new request" form at /portal/new ([web_form], docs/portal.md).

GET draws the form with a signed form token (form_mail.py: one request is one mail,
however often it is posted). POST /new reads the bounded multipart body, checks CSRF
(guard.py's double-submit cookie, bound to "new"), the honeypot, the fields and the
per-address and per-client limits; a problem redraws the form with a sentence and
what was typed (never a 500). A good request is searched in the knowledge base: with
matching published public articles it is held and the "next" page offers them ("yes,
this solved it": no ticket, a deflection counted; "no, send my request": spooled);
without, it is spooled at once. The page says "received" only after spool.put
returned (fsynced), as the SMTP listener's 250 does.

The mail asking an unknown address to confirm links /portal/confirm/TOKEN: its GET
shows a button, and only the POST lifts the hold (store/channel.py), since link
scanners follow links in mail.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from sqlalchemy import update
from sqlmodel import col
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from helpdesk.agents import notify
from helpdesk.errors import TemporaryError
from helpdesk.kb import articles as kb_articles
from helpdesk.kb import suggest as kb_suggest
from helpdesk.outgoing import portal_links
from helpdesk.spool import Envelope
from helpdesk.store import attempts
from helpdesk.store import channel as ticket_channel
from helpdesk.store.db import session_scope
from helpdesk.store.kb_models import KbArticle
from helpdesk.store.models import Ticket
from helpdesk.web.portal import form_mail, form_read, guard, render

LINK = "new"  # the CSRF basis of the form's pages, which have no link token
SUGGESTIONS = 3
log = logging.getLogger("helpdesk.web.portal.form")


def _portal(request: Request) -> Any:
    return request.app.state.portal


def _page(request: Request, name: str, context: dict[str, Any], status: int = 200,
          link: str = LINK) -> Response:
    portal = _portal(request)
    cookie, fresh = guard.browser(request)
    response = render.page(portal.settings, name, {
        **context, "csrf_token": guard.token(portal.secret, cookie, link)}, status)
    guard.set_cookie(response, fresh, portal.secure_cookie)
    return response


def _message(request: Request, title: str, text: str, status: int) -> Response:
    return render.page(_portal(request).settings, "message", {"title": title, "text": text},
                       status)


def _form(request: Request, token: str, kept: dict[str, str] | None = None,
          errors: list[str] | None = None, status: int = 200) -> Response:
    wf = _portal(request).settings.web_form
    return _page(request, "new", {
        "form_token": token, "kept": kept or {}, "errors": errors or [],
        "categories": wf.categories, "priorities": wf.priority_labels,
        "max_size": form_read.size_text(wf.max_size), "max_text": wf.max_text,
        "honeypot": form_read.HONEYPOT}, status)


async def show(request: Request) -> Response:
    return _form(request, form_mail.new_token(_portal(request).settings))


def _csrf_ok(request: Request, fields: dict[str, str]) -> bool:
    cookie = request.cookies.get(guard.COOKIE, "")
    expected = guard.token(_portal(request).secret, cookie, LINK)
    return bool(cookie) and hmac.compare_digest(
        fields.get(guard.FIELD, "").encode("utf-8", "replace"), expected.encode())


async def submit(request: Request) -> Response:
    portal = _portal(request)
    settings = portal.settings
    try:
        posted = await form_read.read(request, settings)
    except form_read.BodyTooLarge:
        return _message(request, "Your request is too large", (
            f"Attachments may be {form_read.size_text(settings.web_form.max_size)} "
            "together. Go back, attach smaller files and send it again."), 413)
    except form_read.MultiPartException:
        return _message(request, "We could not read the form",
                        "Go back, reload the page and try again.", 400)
    if not _csrf_ok(request, posted.fields):
        return _message(request, "This form has expired",
                        "Go back, reload the page and try again.", 403)
    given = posted.fields.get("form", "")
    token = form_mail.read_token(settings, given)
    if token is None:
        return _form(request, form_mail.new_token(settings), posted.kept(), [
            "This form was too old to send: please check it and send it again."], 400)
    if posted.fields.get(form_read.HONEYPOT, "").strip():
        log.info("web form: honeypot filled from %s; nothing sent", _client(request))
        return render.page(settings, "new_received", {"confirm": False})
    is_agent = portal.directory().is_agent_address(posted.fields.get("address", "").strip())
    asked, errors = form_read.check(settings, posted, is_agent)
    if asked is None:
        if posted.uploads:
            errors.append("Files cannot be kept between tries: please attach them again.")
        status = 413 if posted.upload_bytes > settings.web_form.max_size else 400
        return _form(request, given, posted.kept(), errors, status)
    if not await run_in_threadpool(_allowed, request, asked.address):
        return _form(request, given, posted.kept(), [
            "You have sent us many requests in the last hour: please wait a while, or "
            "write to us by mail."], 429)
    given = await run_in_threadpool(form_mail.first_token, settings, asked, given)
    token = form_mail.read_token(settings, given) or token
    return await _next(request, asked, token, given, posted.kept())


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def _allowed(request: Request, address: str) -> bool:
    """Within the hour's requests per client IP and per address (store/attempts.py:
    in the database, shared by every daemon); a refused request is not counted."""
    portal = _portal(request)
    wf = portal.settings.web_form
    with session_scope(portal.engine) as session:
        return attempts.allow(session, portal.settings, [
            ("form-client", _client(request), wf.per_client_per_hour),
            ("form-address", address, wf.per_address_per_hour)], attempts.HOUR,
            count_refused=False)


def _suggested(request: Request, asked: form_mail.Request) -> list[dict[str, Any]]:
    portal = _portal(request)
    if not portal.settings.kb.enabled:
        return []
    with session_scope(portal.engine) as session:
        found = kb_suggest.for_text(session, portal.settings,
                                    f"{asked.subject}\n{asked.text}", SUGGESTIONS)
        return [{"id": int(s.article.id or 0), "title": s.article.title,
                 "question": s.article.question} for s in found]


async def _next(request: Request, asked: form_mail.Request, token: form_mail.FormToken,
                given: str, kept: dict[str, str]) -> Response:
    """Offer matching articles (holding the mail), or spool it at once."""
    settings = _portal(request).settings
    raw, envelope = form_mail.compose(settings, asked, token)
    offered = await run_in_threadpool(_suggested, request, asked)
    try:
        if offered:
            await run_in_threadpool(form_mail.hold, settings, token.key, raw, envelope,
                                    [a["id"] for a in offered])
            return _page(request, "new_next", {"articles": offered, "form_token": given,
                                               "subject": asked.subject})
        return await _spool(request, raw, envelope)
    except (OSError, TemporaryError) as err:
        log.error("web form: could not keep a request from %s: %s", asked.address, err)
        return _form(request, given, kept, [
            "We could not save your request just now: please send it again in a moment."
            + (" Attach the files again." if asked.uploads else "")], 503)


async def _spool(request: Request, raw: bytes, envelope: Envelope) -> Response:
    portal = _portal(request)
    await run_in_threadpool(portal.spool.put, raw, envelope)  # fsynced before we say so
    portal.on_spooled()
    return render.page(portal.settings, "new_received", {"confirm": True})


async def _answer(request: Request) -> tuple[dict[str, str], form_mail.FormToken] | Response:
    """The form of the "next" page's buttons, or the page refusing it."""
    portal = _portal(request)
    try:
        form = await guard.posted(request, portal.secret, LINK)
    except guard.FormTooLarge:
        return _message(request, "Too much", "That is more than this form sends.", 413)
    token = form_mail.read_token(portal.settings, form.get("form", "")) if form else None
    if form is None or token is None:
        return _message(request, "This form has expired",
                        "Go back, reload the page and try again.", 403)
    return form, token


async def send(request: Request) -> Response:
    """"No, send my request": the held mail into the spool. Pressed twice, or after it
    went: the same answer (the pipeline would store it once anyway)."""
    answer = await _answer(request)
    if isinstance(answer, Response):
        return answer
    settings = _portal(request).settings
    held = await run_in_threadpool(form_mail.take, settings, answer[1].key)
    if held is None:
        if await run_in_threadpool(form_mail.was_sent, settings, answer[1].key):
            return render.page(settings, "new_received", {"confirm": True})
        return _message(request, "This request waited too long", (
            "We keep a request a day while you read the suggested articles. Please fill "
            "in the form again."), 410)
    response = await _spool(request, held[0], held[1])
    await run_in_threadpool(form_mail.mark_sent, settings, answer[1].key)
    return response


async def solved(request: Request) -> Response:
    """"Yes, this solved it": no ticket; the article counts one deflection, once."""
    answer = await _answer(request)
    if isinstance(answer, Response):
        return answer
    portal = _portal(request)
    form, token = answer
    article = form.get("article", "")
    held = await run_in_threadpool(form_mail.take, portal.settings, token.key)
    if held is not None and article.isdigit() and int(article) in held[2] \
            and await run_in_threadpool(form_mail.drop, portal.settings, token.key):
        await run_in_threadpool(_count_deflection, portal, int(article))
    return render.page(portal.settings, "new_solved", {})


def _count_deflection(portal: Any, article_id: int) -> None:
    with session_scope(portal.engine) as session:
        session.execute(update(KbArticle).where(col(KbArticle.id) == article_id)
                        .values(deflections=col(KbArticle.deflections) + 1))


# -- confirming an unknown address's request ---------------------------------------------

def _confirm_check(request: Request) -> tuple[int, Response | None]:
    checked = portal_links.check_confirm(_portal(request).settings,
                                         request.path_params["token"])
    if checked.verdict == "invalid":
        return 0, _message(request, "Not found", "There is nothing at this address.", 404)
    if checked.verdict == "expired":
        return 0, _message(request, "This link is too old", (
            "Please send your request again from our web form."), 410)
    return int(checked.value or 0), None


async def confirm_page(request: Request) -> Response:
    _number, refused = _confirm_check(request)
    if refused is not None:
        return refused
    token = request.path_params["token"]
    return _page(request, "confirm", {"action": f"/portal/confirm/{token}"}, link=token)


async def confirm(request: Request) -> Response:
    number, refused = _confirm_check(request)
    if refused is not None:
        return refused
    portal, token = _portal(request), request.path_params["token"]
    try:
        form = await guard.posted(request, portal.secret, token)
    except guard.FormTooLarge:
        form = None
    if form is None:
        return _message(request, "This form has expired",
                        "Go back, reload the page and try again.", 403)
    found = await run_in_threadpool(_confirm, portal, number)
    if not found:
        return _message(request, "Not found", "There is nothing at this address.", 404)
    portal.on_outbox()
    status = f"/portal/ticket/{portal_links.ticket_token(portal.settings, number)}"
    return render.page(portal.settings, "confirmed", {"status_url": status})


def _confirm(portal: Any, number: int) -> bool:
    """Lift the hold and tell the agents of the new ticket, as the pipeline would have."""
    settings = portal.settings
    with session_scope(portal.engine) as session:
        ticket = session.get(Ticket, number)
        if ticket is None:
            return False
        if ticket_channel.confirm(session, ticket) and not ticket.spam:
            first = kb_articles.first_customer_message(session, number)
            directory = portal.directory()
            notice = notify.Notice("new", first.body_text if first else "",
                                   author=(first.from_name or first.from_addr) if first
                                   else "")
            notify.send(session, settings, directory, ticket, notice,
                        notify.new_ticket_recipients(settings, directory, ticket))
        return True


ROUTES = [
    Route("/new", show, methods=["GET"]),
    Route("/new", submit, methods=["POST"]),
    Route("/new/send", send, methods=["POST"]),
    Route("/new/solved", solved, methods=["POST"]),
    Route("/confirm/{token}", confirm_page, methods=["GET"]),
    Route("/confirm/{token}", confirm, methods=["POST"]),
]
