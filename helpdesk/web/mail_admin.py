"""The admins' mail page, /desk/mail: the mail that did not go as it should, and the way
out for each. Quarantined mail (release into the pipeline again, or discard), outgoing
mail given up (send again), webhook deliveries given up (post again): what `helpdesk
quarantine`, `helpdesk outbox` and `helpdesk api hooks retry` do, on one page, through
the same functions. Each action is logged with the admin's name, as the CLI's are.

After an action the page is shown again (303) with a notice chosen from NOTICES by
key: nothing the request carries is echoed into the page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from helpdesk.outgoing import hooks, outbox_admin
from helpdesk.spool import Spool
from helpdesk.store import quarantine_ops, queries
from helpdesk.store.db import session_scope, snapshot_scope
from helpdesk.store.models import Quarantine
from helpdesk.web import auth, pages
from helpdesk.web.context import WebContext

log = logging.getLogger("helpdesk.web.mail_admin")
LIMIT = 200  # rows per list: more waiting than this is a job for the CLI's --limit
NOTICES = {
    "released": "Released: the pipeline takes the mail from here.",
    "discarded": "Discarded: the entry stays, marked so, with its raw mail.",
    "gone": "That entry was no longer held: someone acted on it meanwhile.",
    "mail": "Queued again: the outbox sends it within a second.",
    "hooks": "Queued again: the webhook worker posts it within a second.",
    "none": "Nothing was given up any more: someone sent it again meanwhile.",
}


@dataclass(frozen=True)
class Problems:
    held: list[Quarantine]  # newest first
    dead_mail: list[outbox_admin.Entry]
    dead_hooks: list[tuple[Any, Any]]  # (HookDelivery, HookEvent)


def _read(web: WebContext) -> Problems:
    with snapshot_scope(web.engine) as session:
        held = queries.quarantined(session, newest=LIMIT)
        return Problems(held, outbox_admin.entries(session, "dead", LIMIT),
                        hooks.log_of(session, None, LIMIT, status="dead"))


def _back(notice: str) -> RedirectResponse:
    return RedirectResponse(f"/desk/mail?done={notice}", status_code=303)


@auth.signed_in("admin")
async def mail_page(request: Request, who: auth.SignedIn) -> Response:
    web = auth.ctx(request)
    problems = await run_in_threadpool(_read, web)
    return pages.page(request, "mail", {
        "problems": problems, "notice": NOTICES.get(request.query_params.get("done", "")),
        "prefix": web.settings.helpdesk.ticket_prefix, "limit": LIMIT})


@auth.signed_in("admin")
async def release(request: Request, who: auth.SignedIn) -> Response:
    web, number = auth.ctx(request), int(request.path_params["number"])

    def work() -> None:
        with session_scope(web.engine) as session:
            quarantine_ops.release(session, web.settings.data_dir,
                                   Spool(web.settings.data_dir / "spool"), number)

    try:
        await run_in_threadpool(work)
    except quarantine_ops.NotHeld:
        return _back("gone")
    web.on_spooled()
    log.warning("quarantine Q%s released by %s on the desk", number, who.agent.name)
    return _back("released")


@auth.signed_in("admin")
async def discard(request: Request, who: auth.SignedIn) -> Response:
    web, number = auth.ctx(request), int(request.path_params["number"])
    form = await request.form()
    reason = " ".join(str(form.get("reason", "")).split())[:200]

    def work() -> str:
        with session_scope(web.engine) as session:
            return quarantine_ops.discard(session, number)

    try:
        original = await run_in_threadpool(work)
    except quarantine_ops.NotHeld:
        return _back("gone")
    log.warning("quarantine Q%s discarded by %s on the desk%s (quarantined for: %s)",
                number, who.agent.name, f": {reason}" if reason else "", original)
    return _back("discarded")


async def _ids(request: Request) -> list[int] | None:
    """The ids the form names (`id` fields), or None for every one (`all`)."""
    form = await request.form()
    if form.get("all"):
        return None
    return [int(v) for v in form.getlist("id") if str(v).isdigit()]


async def _again(request: Request, who: auth.SignedIn,
                 send: Callable[[Session, list[int] | None], list[int]], what: str,
                 notice: str, wake: Callable[[], None]) -> Response:
    """Queue the given-up rows the form names again (`send`), wake their worker, log who."""
    web, ids = auth.ctx(request), await _ids(request)

    def work() -> list[int]:
        with session_scope(web.engine) as session:
            return send(session, ids)

    queued = await run_in_threadpool(work)
    if not queued:
        return _back("none")
    wake()
    log.warning("%s %s queued again by %s on the desk", what, ", ".join(map(str, queued)),
                who.agent.name)
    return _back(notice)


@auth.signed_in("admin")
async def send_mail_again(request: Request, who: auth.SignedIn) -> Response:
    return await _again(request, who, outbox_admin.send_again, "outbox", "mail",
                        auth.ctx(request).on_outbox)


@auth.signed_in("admin")
async def post_hooks_again(request: Request, who: auth.SignedIn) -> Response:
    # the webhook worker looks for due rows every second of its own
    return await _again(request, who, hooks.send_again, "webhook deliveries", "hooks",
                        lambda: None)


ROUTES = [
    Route("/mail", mail_page, methods=["GET"]),
    Route("/mail/quarantine/{number:int}/release", release, methods=["POST"]),
    Route("/mail/quarantine/{number:int}/discard", discard, methods=["POST"]),
    Route("/mail/outbox/retry", send_mail_again, methods=["POST"]),
    Route("/mail/hooks/retry", post_hooks_again, methods=["POST"]),
]
