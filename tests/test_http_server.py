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


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes `sock` (EOF or reset) within `seconds`."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass  # an answer (400) before the close would also do, but is not expected
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_connection_that_never_finishes_its_request_head_is_closed():
    """A silent socket, and one trickling a header a byte at a time, are closed after
    head_timeout; a slow app answering a whole request is not cut off by it."""
    async def slow(request: Request) -> PlainTextResponse:
        await asyncio.sleep(1.5)  # longer than the head timeout: not the client's fault
        return PlainTextResponse("slow")

    async def scenario() -> tuple[bool, bool, tuple[int, bytes], bool]:
        server = HttpServer("127.0.0.1:0", [Route("/slow", slow)], "test: heads",
                            head_timeout=0.5)
        await server.start()
        try:
            silent = socket.create_connection(("127.0.0.1", server.port))
            trickle = socket.create_connection(("127.0.0.1", server.port))

            def drip() -> bool:
                for byte in b"GET /slow HTTP/1.1\r\nHost: x\r\n":
                    try:
                        trickle.sendall(bytes([byte]))
                    except OSError:
                        return True  # closed on us while we dripped
                    if _closed_within(trickle, 0.1):
                        return True
                return _closed_within(trickle, 2)

            silent_closed = await asyncio.to_thread(_closed_within, silent, 3)
            trickle_closed = await asyncio.to_thread(drip)
            answered = await asyncio.to_thread(_get, server.port, "/slow")
            # kept alive after an answer, then silent: closed again (keep-alive or head)
            kept = socket.create_connection(("127.0.0.1", server.port))
            kept.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            kept.settimeout(5)
            first = await asyncio.to_thread(kept.recv, 4096)
            assert first.startswith(b"HTTP/1.1 200")
            kept_closed = await asyncio.to_thread(_closed_within, kept, 8)
            for s in (silent, trickle, kept):
                s.close()
            return silent_closed, trickle_closed, answered, kept_closed
        finally:
            await server.stop()

    silent, trickle, answered, kept = asyncio.run(scenario())
    assert silent and trickle and kept
    assert answered == (200, b"slow")


def test_past_max_connections_a_request_is_answered_503_at_once():
    async def scenario() -> tuple[int, bytes]:
        server = HttpServer("127.0.0.1:0", [_answer("page")], "test: cap",
                            head_timeout=30, max_connections=3)
        await server.start()
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
        try:
            await asyncio.sleep(0.2)  # the three are accepted
            return await asyncio.to_thread(_get, server.port, "/page")
        finally:
            for s in held:
                s.close()
            await server.stop()

    status, _ = asyncio.run(scenario())
    assert status == 503
