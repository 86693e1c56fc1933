"""The portal's pages and stylesheet from templates/portal/, through the mail templates'
search path (outgoing.compose.templates: a site's [paths] templates override any of
them), autoescaped and strict, with the desk's security headers and a CSP that allows
only our own stylesheet, no script at all, and images from here or the logo's origin.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.responses import HTMLResponse, Response

from helpdesk.config.settings import Settings
from helpdesk.outgoing import compose as mailout
from helpdesk.web import pages

# URL name -> template; nothing else is ever looked up for /portal/static/
STATIC = {"portal.css": "portal/static/portal.css.j2"}


def csp(settings: Settings) -> str:
    images = "'self'"
    logo = settings.portal.logo_url
    if logo.startswith("https://"):
        parts = urlsplit(logo)
        images += f" https://{parts.netloc}"
    return ("default-src 'none'; style-src 'self'; img-src " + images + "; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def headers(settings: Settings) -> dict[str, str]:
    return {**pages.SECURITY_HEADERS, "Content-Security-Policy": csp(settings)}


def page(settings: Settings, name: str, context: dict[str, Any], status: int = 200,
         ) -> HTMLResponse:
    """templates/portal/NAME.html.j2 with the branding every page shows."""
    portal = settings.portal
    values = {"brand_name": portal.name or settings.helpdesk.name,
              "logo_url": portal.logo_url, "csrf_token": "",
              "new_request": settings.web_form.enabled, **context}
    env = mailout.templates(settings).environment()
    html = env.get_template(f"portal/{name}.html.j2").render(values)
    return HTMLResponse(html, status_code=status, headers=headers(settings))


def stylesheet(settings: Settings, name: str) -> Response:
    template = STATIC.get(name)
    if template is None:
        return Response("Not found", status_code=404, media_type="text/plain",
                        headers={"X-Content-Type-Options": "nosniff"})
    env = mailout.templates(settings).environment()
    css = env.get_template(template).render(colour=settings.portal.colour,
                                            background=settings.portal.background)
    return Response(css, media_type="text/css",
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})
