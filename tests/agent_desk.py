"""Shared set-up for the agent scenarios: agents.toml, a desk with the daemon running,
and helpers to find the mails the relay received."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tests.agents_toml import agent, agents_toml, team
from tests.helpers import RelaySink, wait_until

AGENTS = agents_toml(agent("alice", "support"),
                     agent("bob", "support", alternates=("bob.builder@staff.test",)),
                     agent("lisa", "support", role="lead"), team("support", lead="lisa"))


def write_agents(tmp_path: Path, agents: str = AGENTS) -> None:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "agents.toml").write_text(agents)


def relay_overrides(relay: RelaySink, **extra: Any) -> dict[str, Any]:
    outgoing = {"relay_host": "127.0.0.1", "relay_port": relay.port, **extra.pop("outgoing", {})}
    return {"outgoing": outgoing, **extra}


def mails_to(relay: RelaySink, address: str) -> list[EmailMessage]:
    return [email.message_from_bytes(r.raw, policy=email.policy.default)  # type: ignore[misc]
            for r in relay.received if address in r.rcpt_tos]


def wait_mails_to(relay: RelaySink, address: str, count: int,
                  timeout: float = 15.0) -> list[EmailMessage]:
    wait_until(lambda: len(mails_to(relay, address)) >= count, timeout,
               what=f"{count} mails to {address}")
    return mails_to(relay, address)


def body(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def reply_to(msg: EmailMessage) -> str:
    return str(msg["Reply-To"].addresses[0].addr_spec)


def msgid(msg: EmailMessage) -> str:
    return str(msg["Message-ID"]).strip().strip("<>")
