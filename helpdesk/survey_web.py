"""The rating pages the survey links point at: a small Starlette app served by uvicorn
inside the daemon, bound to [survey] http.

Mail security scanners open every link in a mail, so a GET never records anything:
it shows the choice preselected with a comment box, and only the POST from that
page records the rating. A link whose signature does not match its ticket gets a
403 page saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import socket
from collections.abc import Iterator
from urllib.parse import parse_qs

import uvicorn
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from helpdesk import survey
from helpdesk.config import Settings
from helpdesk.store.db import session_scope

log = logging.getLogger("helpdesk.survey_web")
MAX_FORM = 16_384


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}"
                        f"</title></head><body><h1>{title}</h1>{body}</body></html>",
                        status_code=status)


def _refused() -> HTMLResponse:
    return _page("This rating link is not valid",
                 "<p>The link was changed or belongs to another ticket, so it cannot be "
                 "used to rate. Please use the link from your survey mail as it is.</p>", 403)


def _form(settings: Settings, ticket_id: int, choice: str, tok: str) -> str:
    scale = settings.survey.scale
    radios = "".join(
        f"<label><input type='radio' name='rating' value='{c}'"
        f"{' checked' if c == choice else ''}> {c}</label> " for c in survey.CHOICES[scale])
    prefix = settings.helpdesk.ticket_prefix
    return (f"<p>Your rating for ticket {prefix}-{ticket_id}:</p>"
            f"<form method='post' action='/survey/{ticket_id}'>"
            f"<input type='hidden' name='t' value='{html.escape(tok, quote=True)}'>"
            f"<p>{radios}</p><p><textarea name='comment' rows='5' cols='60' "
            f"placeholder='Anything you want to tell us (optional)'></textarea></p>"
            f"<p><button type='submit'>Send rating</button></p></form>")


def build_app(settings: Settings, engine: Engine) -> Starlette:
    async def show(request: Request) -> HTMLResponse:
        ticket_id = int(request.path_params["ticket"])
        choice = str(request.path_params["choice"])
        tok = request.query_params.get("t", "")
        if not survey.valid(settings, ticket_id, tok):
            return _refused()
        return _page("How did we do?", _form(settings, ticket_id, choice, tok))

    async def rate(request: Request) -> HTMLResponse:
        ticket_id = int(request.path_params["ticket"])
        body = (await request.body())[:MAX_FORM].decode("utf-8", "replace")
        form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        if not survey.valid(settings, ticket_id, form.get("t", "")):
            return _refused()
        rating = survey.parse_choice(settings.survey.scale, form.get("rating", ""))
        if rating is None:
            return _page("Please choose a rating", "<p>Go back and pick one.</p>", 400)
        recorded = await run_in_threadpool(_record, ticket_id, rating, form.get("comment", ""))
        if not recorded:
            return _page("No survey for this ticket", "<p>Nothing was recorded.</p>", 404)
        return _page("Thank you", "<p>Your rating was recorded. A later rating from the "
                     "same mail replaces this one.</p>")

    def _record(ticket_id: int, rating: survey.Rating, comment: str) -> bool:
        with session_scope(engine) as session:
            return survey.record(settings, engine, session, ticket_id, rating, comment, "web")

    return Starlette(routes=[
        Route("/survey/{ticket:int}/{choice}", show, methods=["GET"]),
        Route("/survey/{ticket:int}", rate, methods=["POST"]),
    ])


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the daemon owns SIGTERM/SIGINT/SIGHUP; uvicorn must not replace them


class SurveyWeb:
    """uvicorn serving the rating pages on the daemon's event loop."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.server: _Server | None = None
        self.task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> None:
        host, port = self.settings.survey.bind
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(build_app(self.settings, self.engine), log_level="warning",
                                lifespan="off", http="h11", ws="none", access_log=False)
        self.server = _Server(config)
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]))
        while not self.server.started and not self.task.done():
            await asyncio.sleep(0.01)
        if self.task.done():
            self.task.result()  # raises what went wrong
        log.info("survey pages on http://%s:%s", host, self.port)

    async def stop(self) -> None:
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
