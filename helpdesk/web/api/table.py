"""The route table's shape and the one wrapper every operation runs through.

An `Operation` says everything about one endpoint: method, path, scope, the models of
its query string, body and answer, whether it needs If-Match. `endpoint(op)` turns it
into a starlette endpoint that authenticates, counts the rate, validates, runs the
handler in a thread and writes the answer; openapi.py reads the same table, so what
is documented is what is checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from helpdesk.errors import TemporaryError
from helpdesk.web.access import MAX_ID
from helpdesk.web.api import schemas
from helpdesk.web.api.auth import ApiError, Caller, RateLimiter, authenticate
from helpdesk.web.context import WebContext

MAX_BODY = 1_000_000  # bytes of a JSON body (a reply's text is at most 100,000 characters)
KEY = re.compile(r"[0-9a-f]{64}")
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


@dataclass
class Call:
    """What a handler gets: validated input and who is calling."""

    web: WebContext
    caller: Caller
    path: dict[str, int]
    query: Any = None  # the operation's query model, validated
    body: Any = None  # the operation's body model, validated
    if_match: str = ""  # the version the client asserts (quotes removed)
    key: str = ""  # a {key} path parameter (a hex digest)


@dataclass
class Result:
    body: BaseModel | Response
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # under /api/v1; {name} parameters are ids
    handler: Callable[[Call], Result]  # runs in a thread; raises ApiError
    summary: str
    answer: type[BaseModel] | None  # the success body; None: a file
    scope: str = "read"
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    status: int = 200
    if_match: bool = False  # needs If-Match with the ticket's version (412, 428)
    etag: bool = False  # answers with an ETag
    description: str = ""

    @property
    def params(self) -> list[str]:
        """The path's id parameters ({key} is a digest, the rest are row ids)."""
        return [p.split("}")[0] for p in self.path.split("{")[1:] if not p.startswith("key}")]

    @property
    def route_path(self) -> str:
        out = self.path
        for name in self.params:
            out = out.replace(f"{{{name}}}", f"{{{name}:int}}")
        return out


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(schemas.Error(error=err.error, detail=err.detail).model_dump(),
                        status_code=err.status, headers={**NO_STORE, **err.headers})


def _invalid(err: ValidationError, where: str) -> ApiError:
    lines = [f"{where}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}".replace(".:", ":")
             for e in err.errors(include_url=False)]
    return ApiError(422, f"The {where} is not valid.", lines[:20])


def _query(op: Operation, request: Request) -> Any:
    if op.query is None:
        return None
    params = request.query_params
    repeated = [k for k in params if len(params.getlist(k)) > 1]
    if repeated:
        raise ApiError(422, "The query string is not valid.",
                       [f"{k}: given more than once" for k in repeated])
    try:
        return op.query.model_validate(dict(params))
    except ValidationError as err:
        raise _invalid(err, "query") from None


async def _body(op: Operation, request: Request) -> Any:
    if op.body is None:
        return None
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError(413, f"The body is larger than {MAX_BODY} bytes.")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(422, "The body is not JSON.") from None
    if not _encodable(data):
        raise ApiError(422, "The body has text that is not Unicode (a lone surrogate).")
    try:
        return op.body.model_validate(data)
    except ValidationError as err:
        raise _invalid(err, "body") from None


def _encodable(data: Any) -> bool:
    """JSON may escape half a surrogate pair, which no mail or database can hold."""
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(data, dict):
        return all(_encodable(k) and _encodable(v) for k, v in data.items())
    if isinstance(data, list):
        return all(_encodable(v) for v in data)
    return True


def _if_match(op: Operation, request: Request) -> str:
    if not op.if_match:
        return ""
    value = request.headers.get("if-match", "").strip()
    if not value:
        raise ApiError(428, "If-Match is required: the ETag of the ticket as you last "
                       "read it (GET the ticket), so a change made since is not overwritten.")
    return value.removeprefix("W/").strip('"')


def _path(op: Operation, request: Request) -> dict[str, int]:
    found = {}
    for name in op.params:
        value = int(request.path_params[name])
        if not 0 < value <= MAX_ID:
            raise ApiError(404, "Not found.")
        found[name] = value
    return found


def _key(request: Request) -> str:
    key = str(request.path_params.get("key", ""))
    if key and not KEY.fullmatch(key):
        raise ApiError(404, "Not found.")
    return key


def endpoint(op: Operation, web: WebContext, limiter: RateLimiter) -> Callable[..., Any]:
    async def run(request: Request) -> Response:
        try:
            caller = await run_in_threadpool(authenticate, web, request, op.scope)
            wait = limiter.allow(caller.token_id)
            if wait:
                raise ApiError(429, "Too many requests for this token; wait and retry.",
                               headers={"Retry-After": str(int(wait) + 1)})
            call = Call(web, caller, _path(op, request), _query(op, request),
                        await _body(op, request), _if_match(op, request), _key(request))
            result = await run_in_threadpool(op.handler, call)
        except ApiError as err:
            return error_response(err)
        except TemporaryError as err:  # the database or a file store is away right now
            return error_response(ApiError(503, "Temporarily unavailable; retry.",
                                           [str(err)], {"Retry-After": "5"}))
        if isinstance(result.body, Response):
            return result.body
        return JSONResponse(result.body.model_dump(mode="json"), status_code=result.status,
                            headers={**NO_STORE, **result.headers})
    run.__name__ = op.handler.__name__
    return run
