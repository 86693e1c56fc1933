"""Who is calling: `Authorization: Bearer hd_...`, a token of `helpdesk api token create`.

The token acts as its agent: web/access.py decides what it may see (the agent's queues,
or all for a lead or admin), the registry's checks what it may do, and every change is
a history event naming the agent. A token whose agent has left agents.toml, a revoked
token and an unknown one are all the same 401. A read token asking to write gets 403.

Rate limits are counted per token in this daemon's memory (a fixed window of [api]
rate_window): no database write per request, which on SQLite would queue every API
call behind mail intake's writes. Two daemons behind one proxy each allow the limit;
what the limit protects (this daemon's threads and database) is per daemon too.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from starlette.requests import Request

from helpdesk.errors import HelpdeskError
from helpdesk.store.db import snapshot_scope
from helpdesk.web.api import tokens
from helpdesk.web.auth import SignedIn, role_of
from helpdesk.web.context import WebContext


class ApiError(HelpdeskError):
    """Answered as JSON {error, detail} with `status` (and `headers`)."""

    def __init__(self, status: int, error: str, detail: list[str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status, self.error = status, error
        self.detail = detail or []
        self.headers = headers or {}


@dataclass(frozen=True)
class Caller:
    who: SignedIn  # the token's agent, as web/access.py and the registry take it
    token_id: int
    token_name: str
    scope: str


def _unauthorized(why: str) -> ApiError:
    return ApiError(401, why, headers={"WWW-Authenticate": 'Bearer realm="helpdesk"'})


def _lookup(web: WebContext, presented: str) -> Caller | None:
    with snapshot_scope(web.engine) as session:
        row = tokens.find(session, presented)
        if row is None:
            return None
        token_id, name, agent_name, scope = int(row.id or 0), row.name, row.agent, row.scope
    directory = web.directory()
    agent = directory.agent(agent_name)
    if agent is None:
        return None
    who = SignedIn(agent, role_of(directory, agent), f"api-token:{token_id}")
    return Caller(who, token_id, name, scope)


def authenticate(web: WebContext, request: Request, scope: str) -> Caller:
    header = request.headers.get("authorization", "")
    kind, _, presented = header.partition(" ")
    if kind.lower() != "bearer" or not presented.strip():
        raise _unauthorized("A token is needed: Authorization: Bearer TOKEN.")
    caller = _lookup(web, presented.strip())
    if caller is None:
        raise _unauthorized("This token is not valid (unknown, revoked, or its agent left).")
    if scope == "write" and caller.scope != "write":
        raise ApiError(403, "This token may only read.")
    return caller


class RateLimiter:
    """At most `limit` requests per token per `window` seconds (fixed windows)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._lock = threading.Lock()
        self._counts: dict[int, tuple[float, int]] = {}

    def allow(self, token_id: int) -> float:
        """0 when allowed; else the seconds until the next window."""
        now = time.monotonic()
        with self._lock:
            start, count = self._counts.get(token_id, (now, 0))
            if now - start >= self.window:
                start, count = now, 0
            if count >= self.limit:
                return max(0.001, self.window - (now - start))
            self._counts[token_id] = (start, count + 1)
            if len(self._counts) > 10_000:  # forget old windows now and then
                self._counts = {k: v for k, v in self._counts.items()
                                if now - v[0] < self.window}
            return 0.0
