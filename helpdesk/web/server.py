"""The daemon's HTTP listeners: uvicorn serving a starlette app on a socket we bind.

There are two, kept apart by config ([http] in config/settings.py): the ops listener
([http] listen: /healthz, /metrics) and the public one ([http] public: the survey
pages), so nothing that describes the daemon's insides is reachable where customers are.

uvicorn's own `serve()` installs SIGTERM/SIGINT handlers that would replace the
daemon's drain handler, so the server is driven by its public parts instead:
startup on a socket we bound (the port is known even for port 0), main_loop as a
task, shutdown when the daemon stops.

This is the one way the daemon hosts HTTP. Several features share a listener by
giving it their routes, at construction or with `add` before `start`: plain routes
(or a Mount at a prefix of its own) side by side in one Starlette app, since a Mount
at "/" would answer every path and hide whatever comes after it.

Slow or idle clients: uvicorn closes a kept-alive connection after a few idle seconds,
but one that never completes its first request head (connected, silent, or a byte now
and then) it keeps forever, so a few hundred such sockets would use up the daemon's
file descriptors. Each connection gets `head_timeout` seconds to send a whole request
head (h11 still says the client is IDLE: closed), and past `max_connections` requests
are answered 503 at once (uvicorn's limit_concurrency) rather than queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("helpdesk.http")


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _protocol(head_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol (Config's `http` takes a protocol class), closing a
    connection whose request head is not complete `head_timeout` seconds after it
    opened or after its last response."""

    class HeadTimeout(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(head_timeout, self._head_late)

        def _head_late(self) -> None:
            self._head_timer = None
            # their side IDLE: no whole request head yet (not a slow app or a body)
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                log.info("HTTP: closed a connection from %s that sent no request head "
                         "within %ss", (self.client or ("?",))[0], head_timeout)
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            super().connection_lost(exc)

    return HeadTimeout


class HttpServer:
    def __init__(self, listen: str, routes: Sequence[BaseRoute], serves: str, *,
                 head_timeout: float = 10.0, max_connections: int = 500) -> None:
        self.serves = serves  # for the log: what this listener is for
        self.host, port = split_listen(listen)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        made = socket.create_server((self.host, port), family=family, reuse_port=False)
        # the same socket again, its protocol read from the descriptor: create_server
        # leaves proto 0, and asyncio sets TCP_NODELAY only on connections whose proto is
        # TCP, so each response (headers, then body) waited ~40 ms for the client's
        # delayed ACK (bench/web.py: every desk page 40 ms slower than a bare app)
        self.sock = socket.socket(fileno=made.detach())
        self.port = int(self.sock.getsockname()[1])
        self.app = Starlette(routes=list(routes))
        config = uvicorn.Config(self.app, log_config=None, access_log=False,
                                lifespan="off", timeout_graceful_shutdown=5,
                                http=_protocol(head_timeout),
                                limit_concurrency=max_connections)
        config.load()
        self.server = uvicorn.Server(config)
        self.server.lifespan = config.lifespan_class(config)
        self._task: asyncio.Task[None] | None = None

    def add(self, *routes: BaseRoute) -> None:
        """More routes on this listener (another app's pages); before `start`."""
        self.app.router.routes.extend(routes)

    async def start(self) -> None:
        await self.server.startup(sockets=[self.sock])
        self._task = asyncio.create_task(self.server.main_loop())
        log.info("HTTP (%s) on %s:%s", self.serves, self.host, self.port)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.server.shutdown(sockets=[self.sock])
