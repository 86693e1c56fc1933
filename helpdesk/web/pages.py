"""HTML pages from templates/web/ (the same search path as mail templates: site
directory first, then the packaged ones), autoescaped, with StrictUndefined so a
template that names a missing value fails loudly instead of printing nothing.

Every page gets the headers a page that shows mail-derived text needs: a strict
Content-Security-Policy (no scripts, no framing, forms only to ourselves), no caching
(pages show who is signed in) and no Referer (sign-in links carry their token in the URL).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse

from helpdesk.config.settings import Settings
from helpdesk.outgoing import compose as mailout

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@lru_cache(maxsize=8)
def _environment(search: tuple[str, ...]) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(list(search)),
                              undefined=jinja2.StrictUndefined, autoescape=True)


def environment(settings: Settings) -> jinja2.Environment:
    return _environment(tuple(str(p) for p in mailout.templates(settings).search_path()))


def page(request: Request, name: str, context: dict[str, Any] | None = None,
         status: int = 200, headers: dict[str, str] | None = None,
         background: BackgroundTask | None = None) -> HTMLResponse:
    """Render templates/web/`name`.html.j2. Every page knows the request's CSRF token
    (`csrf_token`, for the hidden field of a form) and who is signed in (`who`, or None)."""
    settings: Settings = request.app.state.web.settings
    values = {
        "helpdesk_name": settings.helpdesk.name,
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "who": getattr(request.state, "who", None),
        **(context or {}),
    }
    html = environment(settings).get_template(f"web/{name}.html.j2").render(values)
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})},
                        background=background)


def message(request: Request, title: str, text: str, status: int) -> HTMLResponse:
    """A page that only says something (refusals, errors), with the right status."""
    return page(request, "message", {"title": title, "text": text}, status)
