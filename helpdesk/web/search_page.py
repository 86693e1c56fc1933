"""The search page, GET /desk/search?q=...&status=&queue=&assignee=&customer=&since=&until=
(&cursor= for the next page): helpdesk.store.search, best hits first, each a snippet with
the matched words marked, linking to the message on its ticket page.

An agent searches their teams' queues only, leads and admins all (web/access.py, the
desk's one rule). The query string comes from a browser:
words reach the index only through search.parse_query, an unknown filter value matches
nothing, a date that is not one is ignored with a note, a cursor that is not ours means
the first page; none of it is an error. Snippets are Hit.snippet_html(): mail text
escaped, only our <mark> is markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from helpdesk.store import queries, search
from helpdesk.store.db import snapshot_scope
from helpdesk.store.models import Status
from helpdesk.web import access, auth, pages
from helpdesk.web.context import WebContext

PAGE = 20
MAX_QUERY = 1000  # characters of q looked at; parse_query keeps 32 terms anyway
MAX_VALUES = 20  # values of one filter
MAX_VALUE = 320  # characters of one filter value (an address is at most 320)
FILTERS = ("status", "queue", "assignee")


@dataclass
class Asked:
    """The search as the query string asks it, cut to size; echoed back into the form."""

    q: str = ""
    status: list[str] = field(default_factory=list)
    queue: list[str] = field(default_factory=list)
    assignee: list[str] = field(default_factory=list)
    customer: str = ""
    since: str = ""
    until: str = ""
    cursor: str = ""
    notes: list[str] = field(default_factory=list)  # what of the input was ignored, and why

    @classmethod
    def read(cls, request: Request) -> Asked:
        params = request.query_params

        def values(name: str) -> list[str]:
            got = (v.strip()[:MAX_VALUE] for v in params.getlist(name)[:MAX_VALUES])
            return [v for v in got if v]

        return cls(q=params.get("q", "")[:MAX_QUERY], status=values("status"),
                   queue=values("queue"), assignee=values("assignee"),
                   customer=params.get("customer", "").strip()[:MAX_VALUE],
                   since=params.get("since", "").strip()[:40],
                   until=params.get("until", "").strip()[:40],
                   cursor=params.get("cursor", "")[:20])

    def day(self, name: str) -> datetime | None:
        """since: from the start of that day (UTC); until: to the end of that day."""
        typed = getattr(self, name)
        if not typed:
            return None
        try:
            day = date.fromisoformat(typed)
        except ValueError:
            self.notes.append(f"“{typed}” is not a date like 2026-11-30: ignored.")
            return None
        moment = datetime.combine(day, time(), UTC)
        return moment + timedelta(days=1) if name == "until" else moment

    def query_string(self, cursor: str = "") -> str:
        """This search as a link, for the next page."""
        pairs: list[tuple[str, str]] = [("q", self.q)]
        pairs += [(name, v) for name in FILTERS for v in getattr(self, name)]
        pairs += [(k, getattr(self, k)) for k in ("customer", "since", "until") if getattr(self, k)]
        if cursor:
            pairs.append(("cursor", cursor))
        return urlencode(pairs)


def visible_queues(who: auth.SignedIn, web: WebContext) -> list[str] | None:
    """The queues `who` may search (web/access.py's rule), or None for all."""
    allowed = access.visible_queues(web.settings, who)
    return None if allowed is None else list(allowed)


@dataclass
class Found:
    hits: list[search.Hit]
    more: str  # the cursor of the next page, or ""
    queues: list[str]  # for the form's choice: what the agent may search
    words: bool  # the query had words to look for


def run(web: WebContext, who: auth.SignedIn, asked: Asked) -> Found:
    since, until = asked.day("since"), asked.day("until")
    with snapshot_scope(web.engine) as session:
        allowed = visible_queues(who, web)
        choices = allowed if allowed is not None else sorted(
            {*web.settings.queue, *queries.queue_names(session)})
        queues = asked.queue if allowed is None else [q for q in asked.queue if q in allowed]
        words = bool(search.parse_query(asked.q))
        if not words or (asked.queue and not queues):
            # nothing to look for, or only queues not theirs to look in
            return Found([], "", choices, words)
        filters = search.Filters(statuses=asked.status, queues=queues,
                                 assignees=asked.assignee, customer=asked.customer,
                                 since=since, until=until,
                                 scope=access.scope(web.settings, who))
        hits = search.search(session, asked.q, filters, PAGE + 1, asked.cursor)
    more = hits[PAGE - 1].cursor if len(hits) > PAGE else ""
    return Found(hits[:PAGE], more, choices, words)


def _context(web: WebContext, asked: Asked, found: Found) -> dict[str, Any]:
    return {
        "asked": asked, "found": found, "prefix": web.settings.helpdesk.ticket_prefix,
        "statuses": [s.value for s in Status],
        "agents": [a.name for a in web.directory().agents],
        "more_link": f"/desk/search?{asked.query_string(found.more)}" if found.more else "",
        "later_page": asked.cursor not in ("", "0"),
    }


@auth.signed_in()
async def search_page(request: Request, who: auth.SignedIn) -> Response:
    web = auth.ctx(request)
    asked = Asked.read(request)
    found = await run_in_threadpool(run, web, who, asked)
    return pages.page(request, "search", _context(web, asked, found))


ROUTES = [Route("/search", search_page, methods=["GET"])]
