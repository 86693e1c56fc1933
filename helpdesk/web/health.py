"""HTTP routes for /healthz and /metrics (starlette), served on the ops listener only
([http] listen), never on the public one.

Both do blocking database reads, so they run in a worker thread: a slow database
must not stall the event loop that also runs the SMTP listener (when in-process).
"""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helpdesk.report import health


def health_routes(daemon: health.Observed, registry: CollectorRegistry) -> list[Route]:
    async def healthz(request: Request) -> Response:
        healthy, data = await asyncio.to_thread(health.report, daemon)
        return JSONResponse(data, status_code=200 if healthy else 503,
                            headers={"Cache-Control": "no-store"})

    async def metrics(request: Request) -> Response:
        body = await asyncio.to_thread(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return [Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"])]
