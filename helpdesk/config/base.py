"""What every config schema shares: the section base and the host:port rule.

settings.py and schedule.py both build on this, so a section forbids unknown keys
and is frozen the same way everywhere, and an address is checked by one rule.
"""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    # extra="forbid": a misspelt key stops start-up instead of being ignored;
    # frozen: nothing changes settings after they were validated.
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_host_port(v: str) -> str:
    """A listen address "host:port" (IPv6 as "[::1]:8026"); empty means disabled."""
    if not v:
        return v
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be host:port, like 127.0.0.1:8026 (or empty to disable)")
    return v


_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """A loopback host name or address (no TLS is allowed only there)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
