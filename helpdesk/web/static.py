"""The desk's own static files: /desk/static/{name} serves an allow-list only.

The pages' CSP lets styles and scripts come from 'self' alone, so the desk's stylesheet
(templates/web/static/desk.css, linked from base.html.j2 on every page, sign-in pages
too) and the ticket page's script are served here. They are read through the template
search path, so a site may override them like any page; no name outside ALLOWED is ever
looked up (no path from the URL reaches the loader).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from helpdesk.web import auth, pages

# URL name -> (template path, media type); only these are served
ALLOWED: dict[str, tuple[str, str]] = {
    "desk.css": ("web/static/desk.css", "text/css"),
    "ticket.css": ("web/static/ticket.css", "text/css"),
    "ticket_actions.js": ("web/ticket_actions.js", "text/javascript"),
}


async def static_file(request: Request) -> Response:
    entry = ALLOWED.get(request.path_params["name"])
    if entry is None:
        return Response("Not found", status_code=404, media_type="text/plain",
                        headers={"X-Content-Type-Options": "nosniff"})
    path, media_type = entry
    env = pages.environment(auth.ctx(request).settings)
    source = env.loader.get_source(env, path)[0]  # type: ignore[union-attr]
    # no-cache, not no-store: browsers revalidate, so an edited file shows at once
    return Response(source, media_type=media_type,
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


ROUTES = [
    Route("/static/{name}", static_file, methods=["GET"]),
]
