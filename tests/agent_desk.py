"""Shared set-up for the agent scenarios: agents.toml, a desk with the daemon running,
and helpers to find the mails the relay received."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from helpdesk.config import Settings
from tests.helpers import RelaySink, all_tickets, wait_until

AGENTS = """
[[agent]]
name = "alice"
email = "alice@staff.test"
teams = ["support"]

[[agent]]
name = "bob"
email = "bob@staff.test"
alternates = ["bob.builder@staff.test"]
teams = ["support"]

[[agent]]
name = "lisa"
email = "lisa@staff.test"
teams = ["support"]
role = "lead"

[[team]]
name = "support"
lead = "lisa"
"""


def write_agents(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "agents.toml").write_text(AGENTS)


def relay_overrides(relay: RelaySink, **extra: Any) -> dict[str, Any]:
    return {"outgoing": {"relay_host": "127.0.0.1", "relay_port": relay.port}, **extra}


def mails_to(relay: RelaySink, address: str) -> list[EmailMessage]:
    return [email.message_from_bytes(r.raw, policy=email.policy.default)  # type: ignore[misc]
            for r in relay.received if address in r.rcpt_tos]


def wait_mails_to(relay: RelaySink, address: str, count: int,
                  timeout: float = 15.0) -> list[EmailMessage]:
    wait_until(lambda: len(mails_to(relay, address)) >= count, timeout,
               what=f"{count} mails to {address}")
    return mails_to(relay, address)


def ticket(settings: Settings, number: int = 1) -> dict[str, Any]:
    found = [t for t in all_tickets(settings) if t["id"] == f"HD-{number}"]
    assert found, f"no ticket HD-{number}"
    return found[0]


def wait_ticket(settings: Settings, number: int, predicate: Any, what: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = [t for t in all_tickets(settings) if t["id"] == f"HD-{number}"]
        return found[0] if found and predicate(found[0]) else None

    return wait_until(check, 15.0, what=what)


def body(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def reply_to(msg: EmailMessage) -> str:
    return str(msg["Reply-To"].addresses[0].addr_spec)


def msgid(msg: EmailMessage) -> str:
    return str(msg["Message-ID"]).strip().strip("<>")
