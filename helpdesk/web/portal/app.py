"""The portal's starlette app, mounted at /portal by web/app.py.

Every request is decided by its link first: a token that is not ours (changed, for
another kind of page, signed under an old secret) is a 404 page offering to mail a
list of the customer's tickets; a token of ours past [portal] link_valid_days is a 410
page with a button that mails a fresh link to the ticket's customer (never to an
address typed in). A GET only shows; every POST carries the CSRF token of guard.py,
read from a bounded body (413 past it). The customer's buttons carry the status they
were drawn from: a ticket whose status moved meanwhile answers 409 with the page as it
stands now (internal events the customer cannot see never make their form stale).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from helpdesk.config.agents import Directory
from helpdesk.config.settings import Settings
from helpdesk.outgoing import portal_links
from helpdesk.spool import Spool
from helpdesk.store import queries
from helpdesk.store.db import session_scope, snapshot_scope
from helpdesk.store.models import Ticket
from helpdesk.web import context
from helpdesk.web.portal import changes, form, guard, mailing, render, reply, view

ASK = "ask"  # the link basis of the ask-for-my-tickets form, which has no link
DONE = {"reply": "We received your message. It will appear below in a moment.",
        "solved": "Thank you. We have marked your request as solved.",
        "broken": "Sorry to hear that. We have reopened your request and told the team."}


@dataclass(frozen=True)
class Portal:
    settings: Settings
    engine: Engine
    directory: Callable[[], Directory]
    on_outbox: Callable[[], None]
    on_spooled: Callable[[], None]
    base_url: Callable[[], str]
    secret: bytes
    spool: Spool

    @property
    def secure_cookie(self) -> bool:
        return context.secure_cookie(self.settings)


def _portal(request: Request) -> Portal:
    portal: Portal = request.app.state.portal
    return portal


def with_form(request: Request, name: str, context: dict[str, Any], link: str,
              status: int = 200) -> Response:
    """A page whose forms carry the CSRF token for `link`; sets the cookie if new."""
    portal = _portal(request)
    cookie, fresh = guard.browser(request)
    response = render.page(portal.settings, name, {
        **context, "csrf_token": guard.token(portal.secret, cookie, link)}, status)
    guard.set_cookie(response, fresh, portal.secure_cookie)
    return response


def message(request: Request, title: str, text: str, status: int) -> Response:
    return render.page(_portal(request).settings, "message", {"title": title, "text": text},
                       status)


def invalid(request: Request) -> Response:
    return with_form(request, "invalid", {}, ASK, 404)


def expired(request: Request, kind: str) -> Response:
    """The page of a link of ours that is too old: a button mails a fresh one."""
    token = request.path_params["token"]
    return with_form(request, "expired", {"action": f"/portal/{kind}/{token}/fresh"}, token, 410)


def too_large(request: Request) -> Response:
    return message(request, "Too much text", "Please keep your message shorter.", 413)


def refused(request: Request) -> Response:
    return message(request, "This form has expired",
                   "Go back, reload the page and try again.", 403)


# -- a ticket's page ------------------------------------------------------------------------

def _ticket_context(portal: Portal, ticket_id: int) -> dict[str, Any] | None:
    # one moment: the reply form answers the last message the page shows, not one
    # committed while the page was read
    with snapshot_scope(portal.engine) as session:
        ticket = session.get(Ticket, ticket_id)
        if ticket is None or ticket.internal:  # an agents-only ticket has no status page
            return None
        shown = view.build(session, portal.settings, portal.directory(), ticket)
        return {"view": shown, "reply_token": reply.form_token(portal.settings, session,
                                                                ticket_id)}


async def ticket_page(request: Request, ticket_id: int, *, banner: str = "", text: str = "",
                      status: int = 200) -> Response:
    token = request.path_params["token"]
    context = await run_in_threadpool(_ticket_context, _portal(request), ticket_id)
    if context is None:
        return invalid(request)
    return with_form(request, "ticket", {**context, "banner": banner, "text": text,
                                         "base": f"/portal/ticket/{token}"}, token, status)


async def show(request: Request) -> Response:
    checked = portal_links.check_ticket(_portal(request).settings, request.path_params["token"])
    if checked.verdict == "invalid":
        return invalid(request)
    if checked.verdict == "expired":
        return expired(request, "ticket")
    return await ticket_page(request, int(checked.value or 0),
                             banner=DONE.get(request.query_params.get("done", ""), ""))


async def act(request: Request) -> Response:
    portal, token = _portal(request), request.path_params["token"]
    action = request.path_params["action"]
    checked = portal_links.check_ticket(portal.settings, token)
    if checked.verdict == "invalid" or action not in ("reply", "solved", "broken", "fresh"):
        return invalid(request)
    if checked.verdict == "expired" and action != "fresh":
        return expired(request, "ticket")
    try:
        form = await guard.posted(request, portal.secret, token)
    except guard.FormTooLarge:
        return too_large(request)
    if form is None:
        return refused(request)
    ticket_id = int(checked.value or 0)
    if action == "fresh":
        return await _fresh_ticket_link(request, ticket_id)
    if action == "reply":
        return await _reply(request, ticket_id, form)
    return await _change(request, ticket_id, action, form.get("status", ""))


async def _reply(request: Request, ticket_id: int, form: dict[str, str]) -> Response:
    portal = _portal(request)
    text = form.get("text", "").strip()
    if not text:
        return await ticket_page(request, ticket_id, banner="Please write something first.",
                                 status=400)
    if len(text) > reply.MAX_TEXT:
        return await ticket_page(request, ticket_id, text=text, status=413, banner=(
            f"Please keep your reply under {reply.MAX_TEXT:,} characters."))
    drawn = reply.read_form_token(portal.settings, ticket_id, form.get("form", ""))
    if drawn is None:
        return refused(request)

    def composed() -> Any:
        with session_scope(portal.engine) as session:
            ticket = session.get(Ticket, ticket_id)
            return reply.compose(portal.settings, session, ticket, drawn, text) \
                if ticket is not None and not ticket.internal else None

    mail = await run_in_threadpool(composed)
    if mail is None:
        return invalid(request)
    await run_in_threadpool(reply.put, portal.spool, *mail)  # fsynced before we say so
    portal.on_spooled()
    return RedirectResponse(f"/portal/ticket/{request.path_params['token']}?done=reply", 303)


async def _change(request: Request, ticket_id: int, action: str, drawn_status: str) -> Response:
    portal = _portal(request)

    def change() -> str:
        with session_scope(portal.engine) as session:
            ticket = session.get(Ticket, ticket_id)
            if ticket is None or ticket.internal:
                return "gone"
            if ticket.status != drawn_status:
                return "stale"
            apply = changes.solved if action == "solved" else changes.still_broken
            return "done" if apply(session, portal.settings, portal.directory(), ticket) \
                else "stale"

    outcome = await run_in_threadpool(change)
    if outcome == "gone":
        return invalid(request)
    if outcome == "stale":
        return await ticket_page(request, ticket_id, status=409, banner=(
            "Your request changed since you opened this page. Here it is as it stands "
            "now: press the button again if it still applies."))
    portal.on_outbox()
    return RedirectResponse(f"/portal/ticket/{request.path_params['token']}?done={action}", 303)


async def _mail_if_client_allowed(request: Request,
                                  send: Callable[[Session, Portal], bool]) -> None:
    """`send` a mailed link in one transaction with the client IP's count of asks (the
    page says "sent" either way: whether an address is known is not told)."""
    portal = _portal(request)
    client = request.client.host if request.client else ""

    def work() -> bool:
        with session_scope(portal.engine) as session:
            return mailing.client_allowed(session, portal.settings, client) and \
                send(session, portal)

    if await run_in_threadpool(work):
        portal.on_outbox()


async def _fresh_ticket_link(request: Request, ticket_id: int) -> Response:
    def send(session: Session, portal: Portal) -> bool:
        ticket = session.get(Ticket, ticket_id)
        return ticket is not None and not ticket.internal and mailing.mail_ticket_link(
            session, portal.settings, ticket, portal.base_url())

    await _mail_if_client_allowed(request, send)
    return render.page(_portal(request).settings, "sent", {"to_customer": True})


# -- a customer's tickets ------------------------------------------------------------------

async def find(request: Request) -> Response:
    return with_form(request, "find", {}, ASK)


async def ask(request: Request) -> Response:
    portal = _portal(request)
    try:
        form = await guard.posted(request, portal.secret, ASK)
    except guard.FormTooLarge:
        return too_large(request)
    if form is None:
        return refused(request)
    address = mailing.clean_address(form.get("address", ""))
    if not address:
        return with_form(request, "find", {"error": "Please enter an email address."}, ASK,
                         400)
    await _mail_list(request, address)
    return render.page(portal.settings, "sent", {"to_customer": False})


async def _mail_list(request: Request, address: str) -> None:
    await _mail_if_client_allowed(request, lambda session, portal: mailing.mail_list(
        session, portal.settings, address, portal.base_url()))


def _tickets(portal: Portal, address: str) -> list[dict[str, str]]:
    settings = portal.settings
    with session_scope(portal.engine) as session:
        contact = queries.contact_by_email(session, address)
        if contact is None:
            return []
        rows = session.exec(select(Ticket).where(Ticket.contact_id == contact.id)
                            .order_by(col(Ticket.id).desc()).limit(200)).all()
        directory = portal.directory()
        return [{"id": f"{settings.helpdesk.ticket_prefix}-{t.id}",
                 "subject": t.subject or "(no subject)",
                 "status": view.status_words(settings, directory, t),
                 "opened": view.when(t.created_at),
                 "url": f"/portal/ticket/{portal_links.ticket_token(settings, int(t.id or 0))}"}
                for t in rows]


async def listing(request: Request) -> Response:
    portal = _portal(request)
    checked = portal_links.check_list(portal.settings, request.path_params["token"])
    if checked.verdict == "invalid":
        return invalid(request)
    if checked.verdict == "expired":
        return expired(request, "tickets")
    rows = await run_in_threadpool(_tickets, portal, str(checked.value))
    return render.page(portal.settings, "tickets", {"tickets": rows})


async def fresh_list(request: Request) -> Response:
    portal, token = _portal(request), request.path_params["token"]
    checked = portal_links.check_list(portal.settings, token)
    if checked.verdict == "invalid":
        return invalid(request)
    try:
        form = await guard.posted(request, portal.secret, token)
    except guard.FormTooLarge:
        return too_large(request)
    if form is None:
        return refused(request)
    await _mail_list(request, str(checked.value))
    return render.page(portal.settings, "sent", {"to_customer": True})


async def static(request: Request) -> Response:
    return render.stylesheet(_portal(request).settings, request.path_params["name"])


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return message(request, "Not found", "There is nothing at this address.", 404)
    if status == 405:
        return message(request, "Not allowed", "This page does not take that.", 405)
    return message(request, "Something went wrong", "Please try again.", status)


def portal_app(portal: Portal) -> Starlette:
    app = Starlette(routes=[
        Route("/", find, methods=["GET"]),
        Route("/ask", ask, methods=["POST"]),
        Route("/ticket/{token}", show, methods=["GET"]),
        Route("/ticket/{token}/{action}", act, methods=["POST"]),
        Route("/tickets/{token}", listing, methods=["GET"]),
        Route("/tickets/{token}/fresh", fresh_list, methods=["POST"]),
        Route("/static/{name}", static, methods=["GET"]),
        # the public "new request" form and its confirmation link (form.py)
        *(form.ROUTES if portal.settings.web_form.enabled else []),
    ], exception_handlers={HTTPException: _http_error})
    app.state.portal = portal
    return app


def make_portal(settings: Settings, engine: Engine, directory: Callable[[], Directory],
                on_outbox: Callable[[], None], on_spooled: Callable[[], None],
                base_url: Callable[[], str]) -> Portal:
    """What the app mounted at /portal works with (web/app.py: portal_app(make_portal(...))).
    The spool is the daemon's (the same directory; names never collide)."""
    return Portal(settings, engine, directory, on_outbox, on_spooled, base_url,
                  settings.secret, Spool(settings.data_dir / "spool"))
