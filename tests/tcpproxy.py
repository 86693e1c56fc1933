"""A tiny loopback TCP forwarder to put in front of a real server (PostgreSQL) in tests.

    proxy = TcpProxy(("127.0.0.1", 5432)).start()
    ... connect to 127.0.0.1:proxy.port ...
    proxy.stop()          # the port refuses connections; open ones are cut
    proxy.start()         # the same port forwards again
    proxy.drop = True     # connections are accepted and closed at once
    proxy.cut()           # cut the open connections, keep listening
    proxy.limit = 1       # a connection beyond one open at a time is closed at once
    proxy.coalesce = b"+ " # the server's chunk starting so waits for its next one (or
                          # COALESCE_S): both reach the client in one packet, as a busy
                          # server or network delivers them; proxy.holding is set while
                          # a chunk waits, proxy.coalesced once one was sent so

Plain threads, so a synchronous test can drive it; nothing is mocked, bytes flow
to the real server.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from tests.helpers import free_port

COALESCE_S = 5.0


class TcpProxy:
    def __init__(self, target: tuple[str, int], port: int | None = None) -> None:
        self.target = target
        self.port = port or free_port()
        self.drop = False
        self.limit: int | None = None
        self.coalesce: bytes | None = None
        self.holding = threading.Event()  # a chunk waits for the next one
        self.coalesced = threading.Event()
        self._clients: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._acceptor: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self) -> TcpProxy:
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, args=(listener,),
                                          name=f"tcpproxy-{self.port}", daemon=True)
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection: the server looks gone."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if self._acceptor is not None:
            self._acceptor.join(5)
            self._acceptor = None
        self.cut()

    def cut(self) -> None:
        """Cut the open connections (both sides see a reset/EOF)."""
        with self._lock:
            conns, self._conns = list(self._conns), set()
            self._clients.clear()
        for conn in conns:
            _close(conn)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            with self._lock:
                over = self.limit is not None and len(self._clients) >= self.limit
            if self.drop or over:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._conns.update((client, upstream))
                self._clients.add(client)
            for src, dst, from_server in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(src, dst, from_server),
                                 daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_server: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_server and self.coalesce and data.startswith(self.coalesce):
                    data += self._next_chunk(src)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)
                self._clients.discard(src)
                self._clients.discard(dst)
            _close(src)
            _close(dst)


    def _next_chunk(self, src: socket.socket) -> bytes:
        """The server's next chunk, within COALESCE_S and while coalescing is asked."""
        self.holding.set()
        deadline = time.monotonic() + COALESCE_S
        src.settimeout(0.05)
        try:
            while self.coalesce and time.monotonic() < deadline:
                try:
                    more = src.recv(65536)
                except TimeoutError:
                    continue
                if more:
                    self.coalesced.set()
                return more
            return b""
        finally:
            src.settimeout(None)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
