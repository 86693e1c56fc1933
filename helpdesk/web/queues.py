"""The desk's queue pages: the views (my tickets, unassigned, all, overdue, at risk,
waiting on the customer, held for review) with a count on every tab, filters, sorting
and paging; bulk assign and close; a page per customer.

Who sees what is web/access.py's rule (leads and admins every queue, an agent the
queues their teams work). A filter naming a queue the agent may not see is a 404, as
is a ticket of one in bulk.

Bulk actions go through the same path as a reply by mail: each ticket in its own
transaction, `#assign NAME` or `#close` applied by agents.actions.run_commands as the
signed-in agent, so each change is a history event naming them. Each ticket carries
the version its row was drawn with; a ticket changed since is reported, not touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from helpdesk import clock
from helpdesk.agents import actions as agent_actions
from helpdesk.agents.commands import Reply, command
from helpdesk.config.settings import Settings
from helpdesk.schedule import sla
from helpdesk.store import contacts_ops, queries, row_facts
from helpdesk.store.db import session_scope, snapshot_scope
from helpdesk.store.models import Contact, Status, Ticket
from helpdesk.store.queries import QueueQuery, Scope, SlaKeys
from helpdesk.web import access, auth, pages, tab_counts
from helpdesk.web.context import WebContext

LIMITS = (25, 50, 100)
MAX_OFFSET = 10_000  # deeper pages are for search, not for paging (OFFSET reads them all)
BULK_MAX = max(LIMITS)
STATUSES = tuple(s.value for s in Status)
TITLES = {"mine": "My tickets", "unassigned": "Unassigned", "all": "All open",
          "overdue": "Overdue SLA", "at-risk": "SLA at risk", "waiting": "Waiting on customer",
          "review": "Held for review"}
SORT_LABELS = {"priority": "priority", "age": "age (oldest first)",
               "sla": "SLA due (soonest first)", "activity": "last activity"}
KEYS = SlaKeys(any_step=sla.step_pattern(), breach=sla.step_pattern(step="breach"),
               first_response=sla.step_pattern("first_response", "breach"),
               next_response=sla.step_pattern("next_response", "breach"),
               resolution=sla.step_pattern("resolution", "breach"))


def scope_of(request: Request, who: auth.SignedIn) -> Scope:
    """What `who` may see (web/access.py's rule), as the queue queries take it."""
    return access.scope(_web(request).settings, who)


def _web(request: Request) -> WebContext:
    return request.app.state.web  # type: ignore[no-any-return]


def _not_found() -> HTTPException:
    return HTTPException(404)


# -- reading the query string ---------------------------------------------------------------

def _number(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        raise _not_found() from None


def parse_query(request: Request, view: str, scope: Scope) -> QueueQuery:
    """The view and its filters from the URL; anything unknown or out of the agent's
    sight is a 404 (a link that cannot be right), never an empty page that looks real."""
    params = request.query_params
    if view not in queries.VIEWS:
        raise _not_found()
    status = params.get("status", "")
    queue = params.get("queue", "")
    if status and status not in STATUSES:
        raise _not_found()
    if queue and scope.queues is not None and queue not in scope.queues:
        raise _not_found()
    assignee = params.get("assignee")
    if assignee == "me":
        assignee = scope.me
    elif assignee == "none":
        assignee = ""
    elif assignee == "":
        assignee = None
    sort = params.get("sort") or ("sla" if view in ("overdue", "at-risk") else "priority")
    if sort not in queries.SORTS:
        raise _not_found()
    limit = _number(params.get("limit"), 50)
    if limit not in LIMITS:
        raise _not_found()
    page = _number(params.get("page"), 1)
    if page < 1 or (page - 1) * limit > MAX_OFFSET:
        raise _not_found()
    return QueueQuery(view, status, queue, assignee, None, sort, limit, (page - 1) * limit,
                      _org_domains(request))


def _org_domains(request: Request) -> tuple[str, ...]:
    """The organisation filter's domains (store.contacts_ops); an unknown one is a 404."""
    org = request.query_params.get("org", "").strip()
    if not org:
        return ()
    domains = contacts_ops.domains_of(_web(request).settings, org[:255])
    if not domains:
        raise _not_found()
    return domains


def _is_id(text: str) -> bool:
    """A row id as a URL or form gives it: ASCII digits, small enough for the database."""
    return text.isascii() and text.isdigit() and len(text) <= 15


def _customer(session: Session, key: str) -> Contact | None:
    """A customer by contact id or address."""
    if _is_id(key):
        return session.get(Contact, int(key))
    return queries.contact_by_email(session, key) if "@" in key else None


# -- the SLA clock of a row -----------------------------------------------------------------

@dataclass(frozen=True)
class Clock:
    state: str  # overdue, at-risk, running, paused, met, none
    text: str
    due: datetime | None


def _span(delta: timedelta) -> str:
    minutes = int(abs(delta.total_seconds()) // 60)
    if minutes < 60:
        return f"{minutes}m"
    if minutes < 48 * 60:
        return f"{minutes // 60}h {minutes % 60}m"
    return f"{minutes // (24 * 60)}d {minutes % (24 * 60) // 60}h"


def row_clock(clocks: list[sla.SlaClock], now: datetime) -> Clock:
    """The most pressing of a ticket's clocks: the soonest due that is still running."""
    running = [c for c in clocks if c.met_at is None and c.due_at is not None]
    if running:
        c = min(running, key=lambda c: c.due_at or now)
        assert c.due_at is not None
        label = sla.LABELS[c.kind]
        if c.due_at <= now:
            return Clock("overdue", f"{label} overdue by {_span(now - c.due_at)}", c.due_at)
        state = "at-risk" if c.warn_at is not None and c.warn_at <= now else "running"
        return Clock(state, f"{label} due in {_span(c.due_at - now)}", c.due_at)
    if any(c.paused for c in clocks):
        return Clock("paused", "paused", None)
    if clocks:
        late = any(c.breached(now) for c in clocks)
        return Clock("met", "met late" if late else "met", None)
    return Clock("none", "no SLA", None)


# -- loading a page -------------------------------------------------------------------------

def _rows(session: Session, settings: Settings, rows: list[queries.QueueRow],
          now: datetime) -> list[dict[str, Any]]:
    """The rows as the template shows them, with the SLA clocks and versions of the page
    read in one statement for all of them, not per row."""
    facts = row_facts.row_facts(session, [int(r.ticket.id or 0) for r in rows])
    ctx = sla.SlaContext(settings)
    prefix = settings.helpdesk.ticket_prefix
    out = []
    for r in rows:
        t = r.ticket
        tid = int(t.id or 0)
        out.append({"id": tid, "ref": f"{prefix}-{tid}", "ticket": t, "customer": r.customer,
                    "customer_name": r.customer_name, "contact_id": t.contact_id,
                    "clock": row_clock(sla.clocks_from(ctx, t, facts.changes[tid],
                                                       facts.times[tid]), now),
                    "version": facts.versions[tid]})
    return out


def _load_view(web: WebContext, scope: Scope, query: QueueQuery,
               customer: str) -> dict[str, Any]:
    now = clock.now()
    with snapshot_scope(web.engine) as session:
        if customer:
            contact = _customer(session, customer)
            query = QueueQuery(**{**query.__dict__, "contact_id": contact.id if contact else -1})
        counts = tab_counts.of(web.engine).get(session, scope, KEYS, now)
        rows = _rows(session, web.settings, queries.queue_rows(session, scope, query, KEYS, now),
                     now)
    return {"counts": counts, "rows": rows, "now": now}


def _link(view: str, params: dict[str, Any], **changes: Any) -> str:
    merged = {k: v for k, v in {**params, **changes}.items() if v not in ("", None)}
    return f"/desk/queue/{view}" + (f"?{urlencode(merged)}" if merged else "")


async def view_page(request: Request, who: auth.SignedIn, view: str) -> Response:
    scope = scope_of(request, who)
    query = parse_query(request, view, scope)
    customer = request.query_params.get("customer", "").strip()[:320]
    web = _web(request)
    data = await run_in_threadpool(_load_view, web, scope, query, customer)
    counts: queries.QueueCounts = data["counts"]
    shown = {"status": query.status, "queue": query.queue, "customer": customer,
             "org": request.query_params.get("org", "").strip(),
             "assignee": request.query_params.get("assignee", ""),
             "sort": request.query_params.get("sort", ""),
             "limit": request.query_params.get("limit", "")}
    total = counts.views[view] if not (query.status or query.queue or customer
                                       or query.org_domains
                                       or query.assignee is not None) else None
    page = query.offset // query.limit + 1
    # an agent's own queues only: a ticket of theirs in another team's queue counts there
    # (it is in "my tickets"), but that queue is not theirs to list
    queues = sorted(scope.queues if scope.queues is not None else
                    {*web.settings.queue, web.settings.helpdesk.default_queue, *counts.queues})
    context = {
        "title": TITLES[view], "view": view, "views": queries.VIEWS, "titles": TITLES,
        "counts": counts, "rows": data["rows"], "queues": queues, "statuses": STATUSES,
        "agents": [a.name for a in web.directory().agents], "shown": shown,
        "sorts": SORT_LABELS, "limits": LIMITS, "sort": query.sort,
        "page": page, "pages": math.ceil(total / query.limit) if total is not None else None,
        "previous": _link(view, shown, page=page - 1) if page > 1 else "",
        "next": _link(view, shown, page=page + 1)
        if len(data["rows"]) == query.limit and query.offset + query.limit <= MAX_OFFSET else "",
        "here": _link(view, shown, page=page if page > 1 else ""),
        "tab_link": lambda v: _link(v, {}),
        "queue_link": lambda q: _link("all", {}, queue=q),
        "status_link": lambda s: _link("all", {}, status=s),
        "role": who.role,
    }
    return pages.page(request, "queue", context)


@auth.signed_in()
async def queue_view(request: Request, who: auth.SignedIn) -> Response:
    return await view_page(request, who, request.path_params["view"])


async def home(request: Request, who: auth.SignedIn) -> Response:
    """The desk's first page: the agent's own tickets."""
    return await view_page(request, who, "mine")


# -- bulk assign / close --------------------------------------------------------------------

@dataclass(frozen=True)
class BulkResult:
    ticket_id: int
    outcome: str  # applied, stale, refused, not found
    detail: str
    ticket: Ticket | None = None  # the fresh state of a stale one
    version: str = ""


def _bulk_one(web: WebContext, who: auth.SignedIn, ticket_id: int,
              version: str, reply: Reply) -> BulkResult:
    """One ticket in one transaction: visible, unchanged since its row was drawn, then
    the commands as by mail. The row is locked first (PostgreSQL; SQLite writes one at
    a time anyway), so nothing changes between the version check and the apply."""
    with session_scope(web.engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.id == ticket_id)
                              .with_for_update()).first()
        if ticket is None or not access.may_see(web.settings, who, ticket):
            return BulkResult(ticket_id, "not found", "no such ticket")
        current = queries.ticket_version(session, ticket_id)
        if current != version:
            return BulkResult(ticket_id, "stale", "changed since you loaded the page; "
                              "not applied", ticket, current)
        done = agent_actions.run_commands(session, web.settings, web.directory(), ticket,
                                          who.agent, reply)
        if done.errors:
            return BulkResult(ticket_id, "refused", "; ".join(done.errors))
        return BulkResult(ticket_id, "applied", done.summary)


def _bulk_reply(form: FormData, who: auth.SignedIn) -> Reply:
    action = str(form.get("action", ""))
    if action == "close":
        return Reply((command("close"),))
    if action == "assign":
        name = str(form.get("assignee", "")).strip()[:100]
        if not name:
            raise HTTPException(400)
        return Reply((command("assign", name),))
    raise HTTPException(400)


def _bulk_tickets(form: FormData) -> list[tuple[int, str]]:
    chosen = []
    for value in form.getlist("ticket")[:BULK_MAX]:
        text = str(value)
        if not _is_id(text):
            raise _not_found()
        chosen.append((int(text), str(form.get(f"version-{text}", ""))))
    return list(dict.fromkeys(chosen))


def _back(value: str) -> str:
    """The queue page the form came from (a desk path only)."""
    return value if value.startswith("/desk/queue/") and "\\" not in value else "/desk/"


@auth.signed_in()
async def bulk(request: Request, who: auth.SignedIn) -> Response:
    form = await request.form()
    try:
        reply = _bulk_reply(form, who)
        chosen = _bulk_tickets(form)
    except HTTPException as err:
        if err.status_code != 400:
            raise
        return pages.message(request, "Nothing done", "Choose an action (and whom to "
                             "assign to).", 400)
    if not chosen:
        return pages.message(request, "Nothing done", "No ticket was ticked.", 400)
    web = _web(request)
    results = [await run_in_threadpool(_bulk_one, web, who, tid, version, reply)
               for tid, version in chosen]
    if any(r.outcome == "applied" for r in results):
        web.on_outbox()  # assignment notices, the customer's resolution notice
    prefix = web.settings.helpdesk.ticket_prefix
    stale = any(r.outcome == "stale" for r in results)
    return pages.page(request, "queue_bulk", {
        "title": "Bulk " + str(form.get("action")), "results": results, "prefix": prefix,
        "back": _back(str(form.get("back", "")))}, 409 if stale else 200)


# -- a customer -----------------------------------------------------------------------------

def _load_customer(web: WebContext, scope: Scope, key: str, offset: int) -> dict[str, Any]:
    now = clock.now()
    with snapshot_scope(web.engine) as session:
        contact = _customer(session, key)
        if contact is None or contact.id is None:
            raise _not_found()
        # every status, newest activity first: a customer's history includes closed tickets
        rows = queries.queue_rows(session, scope, QueueQuery(
            view="all", status="any", contact_id=contact.id, sort="activity", limit=50,
            offset=offset), KEYS, now)
        events = queries.customer_events(session, contact.id, scope)
        if not rows and scope.queues is not None:
            raise _not_found()  # an agent learns nothing of other teams' customers
        return {"contact": contact, "rows": _rows(session, web.settings, rows, now),
                "events": events, "now": now}


@auth.signed_in()
async def customer_page(request: Request, who: auth.SignedIn) -> Response:
    key = request.path_params["key"].strip()[:320]
    data = await run_in_threadpool(_load_customer, _web(request), scope_of(request, who),
                                   key, 0)
    return pages.page(request, "queue_customer", {
        "title": data["contact"].name or data["contact"].email, **data,
        "prefix": _web(request).settings.helpdesk.ticket_prefix})


ROUTES = [
    Route("/queue/{view}", queue_view, methods=["GET"]),
    Route("/bulk", bulk, methods=["POST"]),
    Route("/customer/{key}", customer_page, methods=["GET"]),
]
