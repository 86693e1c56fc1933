"""The rating pages the survey links point at: Starlette routes that the daemon
serves on its public listener ([http] public, web/server.py), beside any other
public pages.

Mail security scanners open every link in a mail, so a GET never records anything:
it shows the choice preselected with a comment box, and only the POST from that
page records the rating.

Anyone on the internet can reach these pages, so every answer is decided before the
work it would cost: the token (in the URL, also for the POST) is checked before the
body is read, and the body is read as a stream and refused past MAX_FORM bytes (413),
whatever Content-Length says or when there is none (chunked). Odd input is a 4xx page:
a malformed ticket id is 404, a token that does not match its ticket 403, a link past
[survey] link_valid_days 410, a missing rating 400; never a 500.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from helpdesk.config.settings import Settings
from helpdesk.errors import HelpdeskError
from helpdesk.store.db import session_scope
from helpdesk.survey import steps as survey
from helpdesk.web.pages import SECURITY_HEADERS

MAX_FORM = 16_384  # a rating, a token and a comment of 4,000 characters fit many times
MAX_TICKET_ID = 2**31 - 1  # ticket ids are 32-bit integers in PostgreSQL


class FormTooLarge(HelpdeskError):
    pass


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}"
                        f"</title></head><body><h1>{title}</h1>{body}</body></html>",
                        status_code=status, headers=SECURITY_HEADERS)  # no-store, CSP,
    # and no Referer carrying the link's token to wherever the customer goes next


def _refused() -> HTMLResponse:
    return _page("This rating link is not valid",
                 "<p>The link was changed or belongs to another ticket, so it cannot be "
                 "used to rate. Please use the link from your survey mail as it is.</p>", 403)


def _expired() -> HTMLResponse:
    return _page("This rating link has expired",
                 "<p>Survey links work for a limited time after the survey mail was sent. "
                 "If you want to tell us something, just reply to our mail.</p>", 410)


def _unknown() -> HTMLResponse:
    return _page("No survey for this ticket", "<p>Nothing was recorded.</p>", 404)


def _too_large() -> HTMLResponse:
    return _page("Too much text", "<p>Please keep your comment shorter.</p>", 413)


def _ticket_id(raw: str) -> int | None:
    """The ticket id from the URL; None for anything that is not a plain, storable number."""
    if raw.isascii() and raw.isdigit() and len(raw) <= 10 and int(raw) <= MAX_TICKET_ID:
        return int(raw)
    return None


def _form(settings: Settings, ticket_id: int, choice: str, tok: str) -> str:
    scale = settings.survey.scale
    radios = "".join(
        f"<label><input type='radio' name='rating' value='{c}'"
        f"{' checked' if c == choice else ''}> {c}</label> " for c in survey.CHOICES[scale])
    prefix = settings.helpdesk.ticket_prefix
    # the token rides in the action URL too, so the POST is checked before its body is read
    action = html.escape(f"/survey/{ticket_id}?t={tok}", quote=True)
    return (f"<p>Your rating for ticket {prefix}-{ticket_id}:</p>"
            f"<form method='post' action='{action}'>"
            f"<input type='hidden' name='t' value='{html.escape(tok, quote=True)}'>"
            f"<p>{radios}</p><p><textarea name='comment' rows='5' cols='60' maxlength='4000' "
            f"placeholder='Anything you want to tell us (optional)'></textarea></p>"
            f"<p><button type='submit'>Send rating</button></p></form>")


async def read_form(request: Request, limit: int = MAX_FORM) -> dict[str, str]:
    """The urlencoded form, read as a stream; FormTooLarge past `limit` bytes, declared
    or not, so a large body is never held in memory."""
    declared = request.headers.get("content-length", "")
    if declared and (not declared.isdigit() or int(declared) > limit):
        raise FormTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise FormTooLarge
    text = body.decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


def routes(settings: Settings, engine: Engine) -> list[Route]:
    def state(ticket_id: int) -> survey.LinkState:
        with session_scope(engine) as session:
            return survey.link_state(settings, session, ticket_id)

    async def checked(ticket_id: int | None, tok: str) -> HTMLResponse | None:
        """The refusal for this link, or None when it may rate."""
        if ticket_id is None:
            return _unknown()
        if not survey.valid(settings, ticket_id, tok):
            return _refused()
        found = await run_in_threadpool(state, ticket_id)
        return {"open": None, "expired": _expired(), "unknown": _unknown()}[found]

    async def show(request: Request) -> HTMLResponse:
        ticket_id = _ticket_id(request.path_params["ticket"])
        tok = request.query_params.get("t", "")
        refusal = await checked(ticket_id, tok)
        if refusal is not None or ticket_id is None:
            return refusal or _unknown()
        choice = str(request.path_params["choice"])
        return _page("How did we do?", _form(settings, ticket_id, choice, tok))

    async def rate(request: Request) -> HTMLResponse:
        ticket_id = _ticket_id(request.path_params["ticket"])
        tok = request.query_params.get("t")
        if tok is not None:  # pages rendered before the token was in the URL send it in the form
            refusal = await checked(ticket_id, tok)
            if refusal is not None:
                return refusal
        try:
            form = await read_form(request)
        except FormTooLarge:
            return _too_large()
        if tok is None:
            refusal = await checked(ticket_id, form.get("t", ""))
            if refusal is not None:
                return refusal
        rating = survey.parse_choice(settings.survey.scale, form.get("rating", ""))
        if rating is None or ticket_id is None:
            return _page("Please choose a rating", "<p>Go back and pick one.</p>", 400)
        recorded = await run_in_threadpool(_record, ticket_id, rating, form.get("comment", ""))
        if not recorded:
            return _unknown()
        return _page("Thank you", "<p>Your rating was recorded. A later rating from the "
                     "same mail replaces this one.</p>")

    def _record(ticket_id: int, rating: survey.Rating, comment: str) -> bool:
        with session_scope(engine) as session:
            return survey.record(settings, engine, session, ticket_id, rating, comment, "web")

    return [
        Route("/survey/{ticket}/{choice}", show, methods=["GET"]),
        Route("/survey/{ticket}", rate, methods=["POST"]),
    ]
