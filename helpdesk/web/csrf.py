"""CSRF: a token on every form, checked on every POST before any route runs.

The token is an HMAC of what identifies the browser: its session cookie once signed
in (so a token is bound to that sign-in and dies with it), before that a random
`hd_csrf` cookie set on the first visit (so the sign-in forms are protected too: no
one can sign a browser in as themselves). Another site can make a browser send our
cookies, but cannot read a page of ours to learn the token.

CsrfGuard is ASGI middleware around the desk: a route cannot forget the check. It
reads the body (bounded: MAX_BODY, else 413; a route taking uploads raises its own
cap with `larger_body`) to find the `csrf_token` field, then hands the same bytes to
the route, which reads its form as usual. The token for the
page being rendered is in `request.state.csrf_token` (pages.page passes it on).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helpdesk.errors import HelpdeskError

FIELD = "csrf_token"
COOKIE = "hd_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_BODY = 1024 * 1024  # sign-in and action forms; pages with uploads will raise it


E = TypeVar("E")


def larger_body(cap: Callable[[Any], int]) -> Callable[[E], E]:
    """Decorate an endpoint (outermost) that takes uploads: its bodies may be up to
    cap(the desk's WebContext) bytes instead of MAX_BODY."""
    def mark(endpoint: E) -> E:
        endpoint.max_body = cap  # type: ignore[attr-defined]
        return endpoint
    return mark


def _cap(scope: Scope) -> int:
    """The cap for the route this request goes to (the router has not run yet)."""
    app = scope.get("app")
    for route in getattr(app, "routes", ()):
        if route.matches(scope)[0] == Match.FULL:
            cap = getattr(getattr(route, "endpoint", None), "max_body", None)
            return int(cap(app.state.web)) if cap is not None else MAX_BODY  # type: ignore[union-attr]
    return MAX_BODY


def token_for(key: bytes, basis: str) -> str:
    mac = hmac.new(key, b"helpdesk.web.csrf\0" + basis.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


class BodyTooLarge(HelpdeskError):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        if len(body) > limit:
            raise BodyTooLarge
        if not message.get("more_body", False):
            break
    return bytes(body)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as starlette does

    return replay


class CsrfGuard:
    def __init__(self, app: ASGIApp, key: bytes, session_cookie: str, cookie_path: str,
                 secure: bool, refuse: Callable[[Request, int], ASGIApp]) -> None:
        self.app = app
        self.key = key
        self.session_cookie = session_cookie
        self.cookie_path = cookie_path
        self.secure = secure
        self.refuse = refuse  # the page for a refused POST (403) or a too large one (413)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookies = Request(scope).cookies
        fresh = ""
        if cookies.get(self.session_cookie):
            basis = "s:" + cookies[self.session_cookie]
        elif cookies.get(COOKIE):
            basis = "c:" + cookies[COOKIE]
        else:
            fresh = secrets.token_urlsafe(32)
            basis = "c:" + fresh
        expected = token_for(self.key, basis)
        scope.setdefault("state", {})["csrf_token"] = expected
        if scope["method"] not in SAFE_METHODS:
            try:
                body = await _read_body(receive, _cap(scope))
            except BodyTooLarge:
                await self.refuse(Request(scope), 413)(scope, receive, send)
                return
            if not await self._token_matches(scope, body, receive, expected):
                await self.refuse(Request(scope), 403)(scope, receive, send)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, self._with_cookie(send, fresh) if fresh else send)

    async def _token_matches(self, scope: Scope, body: bytes, receive: Receive,
                             expected: str) -> bool:
        request = Request(scope, _replay(body, receive))
        try:
            async with request.form(max_files=100, max_fields=200) as form:
                given = form.get(FIELD)
        except Exception:  # a malformed body: starlette raises several kinds; refuse all
            return False
        return isinstance(given, str) and hmac.compare_digest(given, expected)

    def _with_cookie(self, send: Send, value: str) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                secure = "; Secure" if self.secure else ""
                headers.append("Set-Cookie", f"{COOKIE}={value}; Path={self.cookie_path}; "
                                             f"HttpOnly; SameSite=Lax{secure}")
            await send(message)

        return sending
