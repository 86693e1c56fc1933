"""The API as one starlette app, mounted at /api/v1 by web/app.py when [api] enabled.

No cookies are read here, so no CSRF: a browser cannot attach a bearer token by itself.
Every answer is JSON (an unknown path or method too), never the desk's HTML pages.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helpdesk.web.api import openapi
from helpdesk.web.api.auth import ApiError, RateLimiter
from helpdesk.web.api.routes import OPERATIONS
from helpdesk.web.api.table import NO_STORE, endpoint, error_response
from helpdesk.web.context import WebContext


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    text = {404: "Not found.", 405: "Method not allowed."}.get(status, "Request failed.")
    return error_response(ApiError(status, text))


async def _crash(request: Request, exc: Exception) -> Response:
    return error_response(ApiError(500, "Internal error; it has been logged."))


def api_app(web: WebContext) -> Starlette:
    cfg = web.settings.api
    limiter = RateLimiter(cfg.rate_limit, cfg.rate_window.total_seconds())
    document = openapi.document()

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document, headers=NO_STORE)

    routes = [Route(op.route_path, endpoint(op, web, limiter), methods=[op.method])
              for op in OPERATIONS]
    routes.append(Route("/openapi.json", openapi_json, methods=["GET"]))
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.web = web
    return app
