"""CSRF for people who never sign in: a double-submit cookie bound to the link.

The first page a browser opens sets `hd_portal`, a random value (HttpOnly, SameSite=Lax,
path /portal). Every form carries csrf.token_for(secret, cookie + the page's link
token): another site can make the browser send the cookie but cannot read our page to
learn the token, and a token drawn for one ticket's link is no token for another's.
The body is read bounded before anything is decided (survey/web.py read_form).
"""

from __future__ import annotations

import hmac
import re
import secrets

from starlette.requests import Request
from starlette.responses import Response

from helpdesk.survey.web import FormTooLarge, read_form
from helpdesk.web import csrf

COOKIE = "hd_portal"
FIELD = csrf.FIELD
MAX_FORM = 64 * 1024  # a reply of 20,000 characters, UTF-8 and urlencoded, fits
_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")

__all__ = ["COOKIE", "FIELD", "FormTooLarge", "browser", "posted", "token"]


def browser(request: Request) -> tuple[str, str]:
    """(this browser's cookie value, the value to set when it had none, else "")."""
    value = request.cookies.get(COOKIE, "")
    if _SHAPE.fullmatch(value):
        return value, ""
    fresh = secrets.token_urlsafe(32)
    return fresh, fresh


def token(secret: bytes, cookie: str, link: str) -> str:
    return csrf.token_for(secret, f"portal\0{cookie}\0{link}")


def set_cookie(response: Response, value: str, secure: bool) -> None:
    if value:
        response.set_cookie(COOKIE, value, path="/portal", httponly=True, samesite="lax",
                            secure=secure)


async def posted(request: Request, secret: bytes, link: str) -> dict[str, str] | None:
    """The form of a POST whose CSRF token fits this browser's cookie and `link`; None
    when it does not (no cookie, a token from another page). FormTooLarge past MAX_FORM."""
    form = await read_form(request, MAX_FORM)
    cookie = request.cookies.get(COOKIE, "")
    if not _SHAPE.fullmatch(cookie):
        return None
    given = form.get(FIELD, "")
    expected = token(secret, cookie, link)
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
        return None
    return form
