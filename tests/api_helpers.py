"""Helpers of the API's tests: a desk daemon with [api] enabled, tokens from the CLI,
an httpx client carrying one, and a webhook receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tests.agents_toml import agent, agents_toml, team
from tests.helpers import invoke_cli, wait_until
from tests.web_helpers import Desk

AGENTS = agents_toml(agent("alice", "support"), agent("lisa", "support", role="lead"),
                     agent("omar", "ops"), team("support", lead="lisa"))
CAROL = "carol@customer.test"


def api_desk(make_desk: Callable[..., Desk], **config: Any) -> Desk:
    api = {"enabled": True, **config.pop("api", {})}
    return make_desk(agents=AGENTS, api=api, **config)


def make_token(desk: Desk, agent: str, scope: str = "write", name: str = "") -> str:
    args = ["api", "token", "create", "--agent", agent, "--scope", scope]
    result = invoke_cli(desk.settings, *args, *(["--name", name] if name else []))
    assert result.exit_code == 0, result.output
    return str(result.stdout.splitlines()[0])


def api_client(desk: Desk, token: str) -> httpx.Client:
    client = httpx.Client(base_url=desk.url + "/api/v1", timeout=30,
                          headers={"Authorization": f"Bearer {token}"})
    desk.clients.append(client)
    return client


def create_ticket(client: httpx.Client, **fields: Any) -> int:
    """POST /tickets, then poll until the pipeline has stored it; the ticket's id."""
    body = {"from_addr": CAROL, "from_name": "Carol", "subject": "Printer on fire",
            "text": "Help, the printer is on fire.", **fields}
    answer = client.post("/tickets", json=body)
    assert answer.status_code == 202, answer.text
    poll = answer.json()["poll"].removeprefix("/api/v1")
    assert answer.headers["location"] == answer.json()["poll"]

    def stored() -> int | None:
        state = client.get(poll).json()
        return state["ticket_id"] if state["state"] == "stored" else None
    return int(wait_until(stored, timeout=20, what="the created ticket"))


class Receiver:
    """An HTTP server that records each POST; `fail` answers that many with 500 first;
    while `gone`, every POST gets 410 Gone (a receiver taken down for good)."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.fail = 0
        self.gone = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.gone:
                    self.send_response(410)
                elif outer.fail > 0:
                    outer.fail -= 1
                    self.send_response(500)
                else:
                    outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/events"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.got]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
