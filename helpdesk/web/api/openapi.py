"""The OpenAPI 3.1 document, written from the route table (routes.py) and the pydantic
models (schemas.py): what is served is what is documented.

    helpdesk api openapi            # the JSON document
    helpdesk api openapi --markdown # the reference part of docs/api.md
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from helpdesk.web.api import schemas
from helpdesk.web.api.routes import OPERATIONS
from helpdesk.web.api.table import Operation

BASE = "/api/v1"
REF = "#/components/schemas/{model}"
ERRORS = {401: "No valid token.", 403: "The token may not do this (a read token writing).",
          404: "No such thing, or not visible to the token's agent.",
          413: "The body is too large.",
          422: "The input is not valid, or the commands were refused (nothing applied).",
          429: "Too many requests for this token (Retry-After).",
          503: "Temporarily unavailable (the database); retry (Retry-After)."}
IF_MATCH = {412: "The ticket changed since the version in If-Match (ETag: the current).",
            428: "If-Match is missing."}


def _models() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = [schemas.Error]
    for op in OPERATIONS:
        found += [m for m in (op.answer, op.body) if m is not None]
    return list(dict.fromkeys(found))


def _components() -> dict[str, Any]:
    keyed = [(m, "serialization" if m not in _bodies() else "validation") for m in _models()]
    _, top = models_json_schema(keyed, ref_template=REF)  # type: ignore[arg-type]
    return dict(top.get("$defs", {}))


def _bodies() -> set[type[BaseModel]]:
    return {op.body for op in OPERATIONS if op.body is not None}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}}
        for name in op.params]
    if "{key}" in op.path:
        params.append({"name": "key", "in": "path", "required": True,
                       "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}})
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            params.append({"name": name, "in": "query", "required": name in required,
                           "schema": _nullable_dropped(prop),
                           **({"description": prop["description"]}
                              if "description" in prop else {})})
    if op.if_match:
        params.append({"name": "If-Match", "in": "header", "required": True,
                       "schema": {"type": "string", "maxLength": 100},
                       "description": "The ticket's ETag as last read."})
    return params


def _nullable_dropped(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a value: `X | None` is documented as X."""
    kinds = [p for p in prop.get("anyOf", []) if p.get("type") != "null"]
    out = dict(kinds[0]) if len(kinds) == 1 else {k: v for k, v in prop.items()
                                                  if k not in ("title", "description")}
    out.pop("title", None)
    if "default" in prop and prop["default"] is not None:
        out["default"] = prop["default"]
    return out


def _responses(op: Operation) -> dict[str, Any]:
    headers = {"ETag": {"schema": {"type": "string"}}} if op.etag else {}
    if op.answer is None:
        ok: dict[str, Any] = {"description": "The file.", "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    else:
        ok = {"description": op.summary, "content": _json(op.answer)}
    if headers:
        ok["headers"] = headers
    out = {str(op.status): ok}
    errors = {**ERRORS, **(IF_MATCH if op.if_match else {})}
    for status, text in sorted(errors.items()):
        out[str(status)] = {"description": text, "content": _json(schemas.Error)}
    return out


def _operation(op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.handler.__name__, "summary": op.summary,
        "parameters": _parameters(op), "responses": _responses(op),
        "security": [{"token": [op.scope]}],
    }
    if op.description:
        doc["description"] = op.description + f" Scope: {op.scope}."
    else:
        doc["description"] = f"Scope: {op.scope}."
    if op.body is not None:
        doc["requestBody"] = {"required": True, "content": _json(op.body)}
    return doc


def document(version: str = "1") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(BASE + op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "helpdesk API", "version": version,
                 "description": "Tickets, messages, search and #commands for agents' tools "
                 "and integrations. See docs/api.md."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": _components(), "securitySchemes": {"token": {
            "type": "http", "scheme": "bearer",
            "description": "A token of `helpdesk api token create` (scope read or write)."}}},
    }


def markdown() -> str:
    """The reference section of docs/api.md: one line per operation, then each body."""
    out = ["| method | path | scope | what |", "|---|---|---|---|"]
    for op in OPERATIONS:
        extra = " (If-Match)" if op.if_match else ""
        out.append(f"| {op.method} | `{BASE}{op.path}` | {op.scope} | {op.summary}{extra} |")
    for name, schema in sorted(_components().items()):
        out += ["", f"### {name}", ""]
        if schema.get("description"):
            out += [" ".join(schema["description"].split()), ""]
        out += ["| field | type | required |", "|---|---|---|"]
        required = set(schema.get("required", []))
        for field, prop in schema.get("properties", {}).items():
            out.append(f"| `{field}` | {_type(prop)} | {'yes' if field in required else 'no'} |")
    return "\n".join(out) + "\n"


def _type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"])
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if prop.get("type") == "array":
        return f"list of {_type(prop.get('items', {}))}"
    return str(prop.get("type", "any")) + (f" ({prop['format']})" if "format" in prop else "")
