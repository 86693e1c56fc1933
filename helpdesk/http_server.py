"""The daemon's HTTP endpoint: uvicorn serving a starlette app on [http] listen.

uvicorn's own `serve()` installs SIGTERM/SIGINT handlers that would replace the
daemon's drain handler, so the server is driven by its public parts instead:
startup on a socket we bound (the port is known even for port 0), main_loop as a
task, shutdown when the daemon stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute

log = logging.getLogger("helpdesk.http")


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class HttpServer:
    def __init__(self, listen: str, routes: list[BaseRoute]) -> None:
        self.host, port = split_listen(listen)
        self.sock = socket.create_server((self.host, port), reuse_port=False)
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(Starlette(routes=routes), log_config=None, access_log=False,
                                lifespan="off", timeout_graceful_shutdown=5)
        config.load()
        self.server = uvicorn.Server(config)
        self.server.lifespan = config.lifespan_class(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.server.startup(sockets=[self.sock])
        self._task = asyncio.create_task(self.server.main_loop())
        log.info("HTTP (/healthz, /metrics) on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.server.shutdown(sockets=[self.sock])
