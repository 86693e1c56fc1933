"""Who is signed in, and the sign-in pages.

For other routes of the desk:

    who = await auth.require(request)            # any agent; else to the sign-in page
    who = await auth.require(request, "lead")    # a lead or admin; else 403
    who = await auth.current(request)            # SignedIn or None, never raises

or decorate the endpoint: `@auth.signed_in("lead") async def page(request, who): ...`.
`who.agent` is the agents.toml entry (helpdesk.config.agents.Agent), `who.role` the role in
force. A session whose agent has left agents.toml is no sign-in. Roles rank
agent < lead < admin; an agent who leads a team in agents.toml is a lead.

The sign-in form answers the same for an agent's address and any other (and mails in
the background, after the answer has gone, so its timing tells nothing either).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from helpdesk.config.agents import Agent, Directory
from helpdesk.errors import HelpdeskError
from helpdesk.store.db import session_scope, single_read_scope
from helpdesk.web import pages, sessions, signin
from helpdesk.web.context import WebContext

RANK = {"agent": 0, "lead": 1, "admin": 2}
LOGIN_PATH = "/desk/login"


@dataclass(frozen=True)
class SignedIn:
    agent: Agent
    role: str
    session_key: str  # the session row's key (a hash), e.g. to show "this browser"

    def has_role(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


class SignInRequired(HelpdeskError):
    """Raised by `require`; the desk answers with the sign-in page (a redirect)."""


class Forbidden(HelpdeskError):
    """Raised by `require` for a role the agent does not have; the desk answers 403."""


def role_of(directory: Directory, agent: Agent) -> str:
    """The agent's role: admin and lead as agents.toml says, and lead for whoever leads
    a team ([[team]] lead), since they already act as one by mail."""
    if agent.role in ("admin", "lead"):
        return agent.role
    leads = any(t.lead == agent.name for t in directory.teams)
    return "lead" if leads else "agent"


def ctx(request: Request) -> WebContext:
    return request.app.state.web  # type: ignore[no-any-return]


def client_of(request: Request) -> str:
    return request.client.host if request.client else ""


async def current(request: Request) -> SignedIn | None:
    """The signed-in agent for this request, looked up once per request."""
    if hasattr(request.state, "who"):
        return request.state.who  # type: ignore[no-any-return]
    web = ctx(request)
    token = web.signer.loads(request.cookies.get(sessions.COOKIE, ""))
    who = None
    if token is not None:
        who = await run_in_threadpool(_lookup, web, token)
    request.state.who = who
    return who


def _lookup(web: WebContext, token: str) -> SignedIn | None:
    with single_read_scope(web.engine) as session:  # every request: no BEGIN, no COMMIT
        row = sessions.find(session, token)
        name, key = (row.agent, row.key) if row is not None else ("", "")
    if not name:
        return None
    directory = web.directory()
    agent = directory.agent(name)
    return SignedIn(agent, role_of(directory, agent), key) if agent is not None else None


async def require(request: Request, role: str = "agent") -> SignedIn:
    who = await current(request)
    if who is None:
        raise SignInRequired
    if not who.has_role(role):
        raise Forbidden
    return who


Endpoint = Callable[[Request, SignedIn], Awaitable[Response]]
Guarded = Callable[[Request], Awaitable[Response]]


def signed_in(role: str = "agent") -> Callable[[Endpoint], Guarded]:
    """Decorate an endpoint that takes (request, who): it runs only for `role` or above."""
    def wrap(endpoint: Endpoint) -> Guarded:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            return await endpoint(request, await require(request, role))
        return guarded
    return wrap


def sign_in_redirect(request: Request) -> RedirectResponse:
    """To the sign-in page, remembering where the agent was going (a desk path only)."""
    wanted = request.url.path
    if request.url.query:
        wanted += "?" + request.url.query
    return RedirectResponse(f"{LOGIN_PATH}?next={quote(wanted, safe='')}", status_code=303)


def _next(value: str) -> str:
    """Where to go after signing in: a path on the desk, never another site."""
    if value.startswith("/desk/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/desk/"


def _signed_in_response(request: Request, agent: str, target: str) -> Response:
    web = ctx(request)
    with session_scope(web.engine) as session:
        sessions.sweep(session)
        token = sessions.open_session(session, agent, web.settings.web.session_valid,
                                      client_of(request),
                                      request.headers.get("user-agent", ""))
    response = RedirectResponse(_next(target), status_code=303)
    response.set_cookie(sessions.COOKIE, web.signer.dumps(token),
                        max_age=int(web.settings.web.session_valid.total_seconds()),
                        path="/desk", httponly=True, samesite="lax", secure=web.secure_cookie)
    return response


# -- routes -------------------------------------------------------------------------------

async def login_page(request: Request) -> Response:
    if await current(request) is not None:
        return RedirectResponse(_next(request.query_params.get("next", "")), status_code=303)
    return pages.page(request, "login", {"next": _next(request.query_params.get("next", ""))})


def _too_many(request: Request) -> Response:
    return pages.message(request, "Too many sign-in attempts",
                         "Please wait a few minutes before trying again.", 429)


async def ask_for_link(request: Request) -> Response:
    form = await request.form()
    address = str(form.get("address", "")).strip()[:320]
    web = ctx(request)
    client = client_of(request)
    allowed = await run_in_threadpool(_allow, web, address, client)
    if not allowed:
        return _too_many(request)
    # the same page whether or not the address is an agent's; the mail (if any) is
    # queued after the answer has gone, so not even its timing differs
    return pages.page(request, "link_sent", {"address": address},
                      background=BackgroundTask(_mail_link, web, address, client))


def _allow(web: WebContext, address: str, client: str) -> bool:
    with session_scope(web.engine) as session:
        return signin.allow_attempt(session, web.settings, address, client)


def _mail_link(web: WebContext, address: str, client: str) -> None:
    agent = web.directory().by_address(address) if "@" in address else None
    if agent is None:
        return
    with session_scope(web.engine) as session:
        signin.mail_link(session, web.settings, agent, web.base_url(), client)
    web.on_outbox()


async def confirm_page(request: Request) -> Response:
    """The link from the mail: a page with a button. Mail scanners open every link in a
    mail, so the GET only looks; the button's POST signs in."""
    token = request.query_params.get("t", "")
    web = ctx(request)
    usable = bool(token) and await run_in_threadpool(_usable, web, token)
    if not usable:
        return _link_refused(request)
    return pages.page(request, "confirm", {"token": token})


def _usable(web: WebContext, token: str) -> bool:
    with session_scope(web.engine) as session:
        return signin.link_is_usable(session, token)


def _link_refused(request: Request) -> Response:
    return pages.message(request, "This sign-in link cannot be used",
                         "Sign-in links work once, for a short time. Ask for a new one "
                         "on the sign-in page.", 410)


async def confirm(request: Request) -> Response:
    form = await request.form()
    token = str(form.get("t", ""))
    web = ctx(request)
    agent = await run_in_threadpool(_redeem, web, token) if token else None
    if agent is None or web.directory().agent(agent) is None:
        return _link_refused(request)
    return await run_in_threadpool(_signed_in_response, request, agent, "/desk/")


def _redeem(web: WebContext, token: str) -> str | None:
    with session_scope(web.engine) as session:
        return signin.redeem(session, token)


async def password_sign_in(request: Request) -> Response:
    form = await request.form()
    login = str(form.get("login", "")).strip()[:320]
    password = str(form.get("password", ""))[:1024]
    web = ctx(request)
    if not await run_in_threadpool(_allow, web, login, client_of(request)):
        return _too_many(request)
    directory = web.directory()
    agent = directory.by_address(login) if "@" in login else directory.agent(login)
    if not await run_in_threadpool(_check, web, agent, password) or agent is None:
        return pages.page(request, "login", {"next": _next(str(form.get("next", ""))),
                                             "error": "Wrong name or password."}, 401)
    return await run_in_threadpool(_signed_in_response, request, agent.name,
                                   str(form.get("next", "")))


def _check(web: WebContext, agent: Agent | None, password: str) -> bool:
    with session_scope(web.engine) as session:
        return signin.check_password(session, agent, password)


async def logout(request: Request) -> Response:
    token = ctx(request).signer.loads(request.cookies.get(sessions.COOKIE, ""))
    if token is not None:
        await run_in_threadpool(_close, ctx(request), token)
    return _signed_out()


async def logout_everywhere(request: Request) -> Response:
    who = await require(request)
    await run_in_threadpool(_close_all, ctx(request), who.agent.name)
    return _signed_out()


def _close(web: WebContext, token: str) -> None:
    with session_scope(web.engine) as session:
        sessions.close(session, token)


def _close_all(web: WebContext, agent: str) -> None:
    with session_scope(web.engine) as session:
        sessions.close_all(session, agent)


def _signed_out() -> Response:
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/desk")
    return response


ROUTES = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login/link", ask_for_link, methods=["POST"]),
    Route("/login/confirm", confirm_page, methods=["GET"]),
    Route("/login/confirm", confirm, methods=["POST"]),
    Route("/login/password", password_sign_in, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/logout/everywhere", logout_everywhere, methods=["POST"]),
]
