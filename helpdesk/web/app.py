"""The app the daemon serves on [http] public: the survey pages (survey/web.py) when
surveys are on, the agent desk under /desk when [web] enabled, and the customers'
status pages under /portal (web/portal/) when [portal] enabled.

The desk is its own starlette app, so what guards it guards all of it: CsrfGuard
checks every POST, and the exception handlers turn `auth.require`'s refusals into the
sign-in page (SignInRequired) or a 403 page (Forbidden). A wrong path is a 404 page.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from helpdesk.config.agents import Directory
from helpdesk.config.settings import Settings
from helpdesk.web import (
    actions,
    auth,
    csrf,
    customer_export,
    dashboard,
    desk,
    mail_admin,
    pages,
    queues,
    search_page,
    sessions,
)
from helpdesk.web import kb_desk as kb_pages
from helpdesk.web import new_ticket as new_ticket_pages
from helpdesk.web import static as static_files
from helpdesk.web import ticket as ticket_page
from helpdesk.web.context import WebContext, default_base_url


def _refusal(request: Request, status: int) -> ASGIApp:
    if status == 413:
        return pages.message(request, "Too much data", "The form was too large.", 413)
    return pages.message(request, "This form has expired",
                         "Go back, reload the page and try again.", 403)


async def _sign_in(request: Request, exc: Exception) -> Response:
    if request.method in csrf.SAFE_METHODS:
        return auth.sign_in_redirect(request)
    return pages.message(request, "Please sign in", "You are not signed in.", 403)


async def _forbidden(request: Request, exc: Exception) -> Response:
    return pages.message(request, "Not allowed", "Your role does not allow this.", 403)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return pages.message(request, "Not found", "There is nothing at this address.", 404)
    if status == 405:
        return pages.message(request, "Not allowed", "This page does not take that.", 405)
    return pages.message(request, "Something went wrong", "Please try again.", status)


def desk_app(web: WebContext) -> Starlette:
    app = Starlette(
        routes=[*desk.ROUTES, *auth.ROUTES,
                *search_page.ROUTES,
                *dashboard.ROUTES,
                *queues.ROUTES,
                *ticket_page.ROUTES,
                *actions.ROUTES,
                *static_files.ROUTES,
                *kb_pages.ROUTES,
                *mail_admin.ROUTES,  # the admins' mail problems
                *customer_export.ROUTES,  # admins download a customer's data
                *new_ticket_pages.ROUTES],  # agents open tickets (web/new_ticket.py)
        middleware=[Middleware(csrf.CsrfGuard, key=web.secret,  # type: ignore[arg-type]
                               session_cookie=sessions.COOKIE, cookie_path="/desk",
                               secure=web.secure_cookie, refuse=_refusal)],
        exception_handlers={auth.SignInRequired: _sign_in, auth.Forbidden: _forbidden,
                            HTTPException: _http_error},
    )
    app.state.web = web
    return app


def public_routes(settings: Settings, engine: Engine, directory: Callable[[], Directory],
                  on_outbox: Callable[[], None] = lambda: None,
                  base_url: Callable[[], str] | None = None,
                  on_spooled: Callable[[], None] = lambda: None) -> list[BaseRoute]:
    """The public listener's routes (plain routes, no app mounted at '/', which would
    answer every path and hide routes added after it); `base_url` gives where mailed
    links point (default: [http] public_url, else the configured public listener)."""
    routes: list[BaseRoute] = []
    if settings.web.enabled:
        web = WebContext(settings, engine, directory, on_outbox,
                         base_url or (lambda: default_base_url(settings)), settings.secret,
                         on_spooled)
        routes.append(Mount("/desk", app=desk_app(web)))
        # the listener's address, as ./scripts/run prints it, opens the desk
        routes.append(Route("/", lambda request: RedirectResponse("/desk/", 303)))
    if settings.api.enabled:  # the JSON API (helpdesk/web/api/, docs/api.md)
        from helpdesk.web.api.app import api_app

        routes.append(Mount("/api/v1", app=api_app(WebContext(
            settings, engine, directory, on_outbox,
            base_url or (lambda: default_base_url(settings)), settings.secret, on_spooled))))
    if settings.kb.enabled:  # the public knowledge base (web/kb_public.py)
        from helpdesk.web import kb_public

        routes.append(Mount("/kb", app=kb_public.app(settings, engine)))
    if settings.survey.enabled:
        from helpdesk.survey.web import routes as survey_routes

        routes.extend(survey_routes(settings, engine))
    if settings.portal.enabled:  # the customers' status pages (web/portal/)
        from helpdesk.web.portal.app import make_portal, portal_app

        portal = make_portal(settings, engine, directory, on_outbox, on_spooled,
                             base_url or (lambda: default_base_url(settings)))
        routes.append(Mount("/portal", app=portal_app(portal)))
    return routes
