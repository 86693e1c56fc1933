"""A small OAuth 2.0 authorization server on loopback, for XOAUTH2 against the test Dovecot.

    tokens = TokenServer(lifetime=3600).start()
    Dovecot(oauth_introspection=tokens.introspection_url)   # passdb oauth2 asks us
    entry oauth2_command = tokens.command()                  # prints {"access_token", ...}

POST /token issues a fresh random token (what a refresh-token grant does for Gmail or
Microsoft 365); POST /introspect is RFC 7662 token introspection, which Dovecot's
oauth2 passdb calls at every XOAUTH2 login. `revoke_all()` makes every token issued
so far inactive; `fail_token = True` makes /token answer 503 (the provider down).
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass
class TokenServer:
    lifetime: float = 3600.0
    username: str = "oauth@example.test"
    fail_token: bool = False
    issued: list[str] = field(default_factory=list)
    checked: list[tuple[str, bool]] = field(default_factory=list)  # (token, active) per login
    _expiry: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    def start(self) -> TokenServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if self.path == "/token":
                    status, body = server._issue()
                elif self.path == "/introspect":
                    status, body = 200, server._introspect(form.get("token", [""])[0])
                else:
                    status, body = 404, {"error": "not found"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True,
                         name="token-server").start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def introspection_url(self) -> str:
        return f"{self.url}/introspect"

    def command(self) -> str:
        """An oauth2_command that asks /token and prints its JSON, like real token helpers."""
        script = ("import sys, urllib.request; "
                  f"r = urllib.request.urlopen(urllib.request.Request('{self.url}/token', "
                  "data=b'grant_type=refresh_token'), timeout=5); "
                  "sys.stdout.write(r.read().decode())")
        return f'{sys.executable} -c "{script}"'

    def revoke_all(self) -> None:
        with self._lock:
            self._expiry = {token: 0.0 for token in self._expiry}

    def _issue(self) -> tuple[int, dict[str, object]]:
        if self.fail_token:
            return 503, {"error": "temporarily_unavailable"}
        token = "tok-" + secrets.token_urlsafe(16)
        with self._lock:
            self._expiry[token] = time.monotonic() + self.lifetime
            self.issued.append(token)
        return 200, {"access_token": token, "token_type": "Bearer",
                     "expires_in": int(self.lifetime)}

    def _introspect(self, token: str) -> dict[str, object]:
        with self._lock:
            active = self._expiry.get(token, 0.0) > time.monotonic()
            self.checked.append((token, active))
        if not active:
            return {"active": False}
        return {"active": True, "username": self.username}
