"""The SMTP listener in a process of its own.

Why: the pipeline is CPU-bound Python; in the same process it holds the GIL and
the listener's answers wait behind it. Here the listener only spools (fsync,
then 250) and tells the daemon, over a pipe, that there is work.

The daemon binds the socket and hands the file descriptor to the child, so the
port is known (even port 0) and a restarted child keeps the same socket. The
child reads its stdin: end of file (the daemon stopped, or was killed) makes it
stop accepting, finish the transactions in flight, and exit.

The daemon also hands the child the few settings it reads, as JSON, already
validated (ListenerSettings): the child never loads the config file, so it never
imports pydantic and the settings schema (about 15 MiB of its 38 MiB; issue #18),
and a child restarted after the file was edited runs with the daemon's settings,
not the new file's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import helpdesk

if TYPE_CHECKING:  # not at run time: the child must not import pydantic (see above)
    from helpdesk.config.settings import Settings

log = logging.getLogger("helpdesk.smtp")
DRAIN_SECONDS = 20.0
RESPAWN_PAUSE_S = 1.0


def bind(host: str, port: int, wait: float = 10.0) -> socket.socket:
    """Bind the listening socket, waiting a little for a previous instance to let go."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return socket.create_server((host, port), backlog=128)
        except OSError as err:
            if err.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class ListenerProcess:
    """Parent side: start, supervise and stop the listener child."""

    def __init__(self, settings: Settings, on_spooled: Callable[[], None],
                 sock: socket.socket | None = None) -> None:
        self.settings = settings
        self.on_spooled = on_spooled
        # `sock`: a listening socket from systemd (socket activation); else bind our own
        self.sock = sock or bind(settings.smtp.host, settings.smtp.port)
        self.port = int(self.sock.getsockname()[1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready = threading.Event()
        self.stopping = False
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> None:
        self._spawn()
        if not self.ready.wait(timeout):
            raise RuntimeError("the SMTP listener process did not start; see its log above")

    def _spawn(self) -> None:
        package_root = str(Path(helpdesk.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        fd = self.sock.fileno()
        self.ready.clear()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "helpdesk.ingest.smtp_process",
             "--settings", json.dumps(listener_settings(self.settings)), "--fd", str(fd)],
            pass_fds=[fd], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._reader = threading.Thread(target=self._read, args=(self.proc,),
                                        name="smtp-listener", daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(b"spooled"):
                self.on_spooled()
            elif line.startswith(b"ready"):
                self.ready.set()
        code = proc.wait()
        if self.stopping:
            return
        log.error("SMTP listener process exited with %s; starting it again", code)
        time.sleep(RESPAWN_PAUSE_S)
        if not self.stopping:
            self._spawn()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = DRAIN_SECONDS + 5) -> None:
        """Ask the child to finish what is in flight and exit; kill it past the deadline."""
        self.stopping = True
        proc = self.proc
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("SMTP listener did not stop in %.0fs; killing it", timeout)
                proc.kill()
                proc.wait()
        self.sock.close()


# -- what the child is told -----------------------------------------------------------


def listener_settings(settings: Settings) -> dict[str, Any]:
    """The settings the listener reads (IntakeHandler, smtp_factory, tls_context and
    logs.setup), as JSON for the child's command line: no secret is among them."""
    return {
        "helpdesk": {"domains": list(settings.helpdesk.domains),
                     "domain": settings.helpdesk.domain},
        "data_dir": str(settings.data_dir),
        "smtp": settings.smtp.model_dump(mode="json"),
        "log": {"level": settings.log.level, "json_lines": settings.log.json_lines},
    }


class ListenerSettings:
    """In the child: those settings under the names Settings gives them, so the
    listener's code reads them as the in-process listener does. Built from values the
    daemon validated, so nothing is checked again."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.helpdesk = SimpleNamespace(domains=tuple(data["helpdesk"]["domains"]),
                                        domain=data["helpdesk"]["domain"])
        self.data_dir = Path(data["data_dir"])
        smtp = dict(data["smtp"])
        for key in ("tls_cert", "tls_key"):
            smtp[key] = Path(smtp[key]) if smtp[key] else None
        self.smtp = SimpleNamespace(**smtp)
        self.log = SimpleNamespace(**data["log"])


# -- child side ------------------------------------------------------------------------


def _tell(word: bytes) -> None:
    with contextlib.suppress(OSError):
        sys.stdout.buffer.write(word + b"\n")
        sys.stdout.buffer.flush()


async def _serve(settings: Settings, fd: int) -> None:
    from helpdesk.ingest.smtp import IntakeHandler, smtp_factory, tls_context
    from helpdesk.spool import Spool

    loop = asyncio.get_running_loop()
    spool = Spool(settings.data_dir / "spool")
    handler = IntakeHandler(settings, spool, on_spooled=lambda: _tell(b"spooled"))
    sock = socket.socket(fileno=fd)
    server = await loop.create_server(
        smtp_factory(settings, handler, tls_context(settings)), sock=sock)
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, lambda: None)  # the daemon decides when to stop
    loop.add_reader(sys.stdin.fileno(), lambda: os.read(sys.stdin.fileno(), 4096) or done.set())
    host, port = sock.getsockname()[:2]
    log.info("listening for %s on %s:%s (process %s)", "LMTP" if settings.smtp.lmtp else "SMTP",
             host, port, os.getpid())
    _tell(b"ready")
    await done.wait()
    handler.accepting = False
    server.close()
    deadline = loop.time() + DRAIN_SECONDS
    while handler.in_flight and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if handler.in_flight:
        log.error("%d SMTP transactions still in flight at exit", handler.in_flight)


def main(argv: list[str] | None = None) -> None:
    from helpdesk import logs

    parser = argparse.ArgumentParser(prog="helpdesk-smtp-listener")
    parser.add_argument("--settings", required=True, help="listener_settings() as JSON")
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args(argv)
    settings = cast("Settings", ListenerSettings(json.loads(args.settings)))
    logs.setup(settings)
    asyncio.run(_serve(settings, args.fd))


if __name__ == "__main__":
    main()
