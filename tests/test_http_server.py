"""The daemon's one way of hosting HTTP: several features' routes share a listener."""

from __future__ import annotations

import asyncio
import http.client
import socket

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from helpdesk.web.server import HttpServer


def _answer(text: str) -> Route:
    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse(text)

    return Route(f"/{text}", page, methods=["GET"])


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_routes_given_at_construction_and_added_later_share_one_listener():
    async def scenario() -> list[tuple[int, bytes]]:
        server = HttpServer("127.0.0.1:0", [_answer("survey")], "test: two apps")
        server.add(_answer("desk"))
        await server.start()
        try:
            return [await asyncio.to_thread(_get, server.port, path)
                    for path in ("/survey", "/desk", "/nothing")]
        finally:
            await server.stop()

    assert asyncio.run(scenario()) == [(200, b"survey"), (200, b"desk"),
                                       (404, b"Not Found")]


def test_connections_send_without_waiting_for_acks():
    """TCP_NODELAY on every accepted connection: without it a response written in two
    parts (headers, body) waits for the client's delayed ACK, some 40 ms a request."""
    async def scenario() -> list[int]:
        server = HttpServer("127.0.0.1:0", [_answer("page")], "test: nodelay")
        await server.start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            await asyncio.to_thread(conn.request, "GET", "/page")
            response = await asyncio.to_thread(conn.getresponse)
            assert response.read() == b"page"
            flags = [c.transport.get_extra_info("socket").getsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY)
                for c in server.server.server_state.connections]
            conn.close()
            return flags
        finally:
            await server.stop()

    flags = asyncio.run(scenario())
    assert flags and all(flags), flags
