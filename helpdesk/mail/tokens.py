"""Signed reply addresses: support+hd-1042-<token>@domain.

The token is an HMAC-SHA256 of the ticket id (and, for agents, the agent id)
under the configured secret, so nobody can forge a reply address for a ticket
they were never sent; a wrong token is simply ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from helpdesk.config.settings import Settings

TOKEN_LEN = 12


def sign(secret: bytes, subject: str) -> str:
    mac = hmac.new(secret, subject.encode(), hashlib.sha256).digest()
    return base64.b32encode(mac).decode().lower()[:TOKEN_LEN]


def verify(secret: bytes, subject: str, token: str) -> bool:
    # as bytes: compare_digest refuses str with non-ASCII characters, and a token from a
    # URL or a mail can hold anything
    return hmac.compare_digest(sign(secret, subject).encode(),
                               token.lower().encode("utf-8", "replace"))


@dataclass(frozen=True)
class ReplyTarget:
    ticket: int
    agent: int | None
    address: str


def reply_address(local: str, domain: str, prefix: str, secret: bytes, ticket: int,
                  agent: int | None = None) -> str:
    subject = f"{prefix.lower()}-{ticket}" + (f"-a{agent}" if agent is not None else "")
    return f"{local}+{subject}-{sign(secret, subject)}@{domain}"


def ticket_reply_address(settings: Settings, ticket: int | None,
                         agent: int | None = None) -> str:
    """The signed reply address for a ticket (and agent) under this helpdesk's settings."""
    hd = settings.helpdesk
    return reply_address(hd.local_part, hd.domain, hd.ticket_prefix, settings.secret,
                         int(ticket or 0), agent)


def find_reply_target(addresses: list[str], local: str, prefix: str,
                      secret: bytes) -> tuple[ReplyTarget | None, str]:
    """The first validly signed reply address among `addresses`.

    Returns (target, note); note says why a lookalike address was ignored.
    """
    pattern = re.compile(
        rf"^{re.escape(local.lower())}\+({re.escape(prefix.lower())}-(\d+)(?:-a(\d+))?)-([a-z0-9]+)@",
    )
    note = ""
    for addr in addresses:
        m = pattern.match(addr.lower())
        if not m:
            continue
        subject, ticket, agent, token = m.groups()
        if verify(secret, subject, token):
            return ReplyTarget(int(ticket), int(agent) if agent else None, addr), ""
        note = f"ignored {addr}: bad token"
    return None, note
