"""Ticket priorities, lowest first: the one list config, rules, agent commands,
escalation and the tables all use."""

from __future__ import annotations

from enum import StrEnum


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


# plain strings in rising order: escalation raises a ticket one step along it
PRIORITIES: tuple[str, ...] = tuple(p.value for p in Priority)
