"""The scheduler's config sections: [scheduler], [sla.PRIORITY], [escalation], [stale], [survey].

Kept apart from settings.py so the scheduler's keys are documented in one place;
config.Settings embeds them. Durations are strings like "90s", "30m", "8h",
"3d" or "1d12h"; a bare number means seconds.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from helpdesk.config.base import Section
from helpdesk.config.priority import PRIORITIES

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def parse_duration(value: Any) -> Any:
    """'1h30m' -> timedelta; anything else is left to pydantic (and its error)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if not isinstance(value, str):
        return value
    text = value.strip().lower().replace(" ", "")
    if not text or _PART.sub("", text):
        raise ValueError(f'{value!r} is not a duration like "30m", "8h" or "3d"')
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in _PART.findall(text)))


def duration_text(value: timedelta) -> str:
    """A duration as it is written in the config file: "90s", "1h30m", "7d"."""
    seconds, parts = int(value.total_seconds()), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            count, seconds = divmod(seconds, size)
            parts.append(f"{count}{unit}")
    return "".join(parts)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class SchedulerSection(Section):
    enabled: bool = Field(True, description="Run the scheduler inside `helpdesk run`.")
    interval: Duration = Field(timedelta(minutes=1), description="How often a pass runs.")
    lock_key: int = Field(
        727_001, description="PostgreSQL advisory lock id: the daemon holding it is the "
        "leader and the only one running passes. SQLite assumes a single daemon.")


class SlaPolicy(Section):
    """Targets for the priority NAME (low, normal, high or critical); a queue's
    [queue.QUEUE.sla.PRIORITY] overrides them key by key. The clocks count business hours (the
    queue's, else [business_hours], else around the clock) while the ticket is new or open;
    pending, resolved and closed pause them. An unset target is not tracked."""

    first_response: Duration | None = Field(
        None, description="From the ticket's creation to the first reply to the customer.")
    next_response: Duration | None = Field(
        None, description="From a customer's follow-up to our next reply.")
    resolution: Duration | None = Field(
        None, description="From the ticket's creation to its resolution.")

    def merged(self, override: SlaPolicy | None) -> SlaPolicy:
        if override is None:
            return self
        return SlaPolicy(**{k: getattr(override, k) or getattr(self, k)
                            for k in ("first_response", "next_response", "resolution")})


def check_priorities(value: dict[str, SlaPolicy]) -> dict[str, SlaPolicy]:
    bad = [k for k in value if k not in PRIORITIES]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a priority (use {', '.join(PRIORITIES)})")
    return value


class EscalationSection(Section):
    warn_at: float = Field(0.75, ge=0, lt=1, description="Share of the SLA at which the "
                           "assignee is warned; 0 disables the warning.")
    notify: str = Field("lead", description='"lead" (the queue team\'s lead) or an address.')
    raise_priority: bool = Field(True, description="At breach, raise priority one level.")
    reassign: bool = Field(False, description="At breach, hand the ticket to the escalation "
                           "team (`team`, else the queue team's `escalation` in agents.toml).")
    team: str = ""

    @field_validator("notify")
    @classmethod
    def _lead_or_address(cls, v: str) -> str:
        if v != "lead" and "@" not in v:
            raise ValueError('must be "lead" or an email address')
        return v


class StaleSection(Section):
    pending_remind: Duration | None = Field(
        None, description="A pending ticket with no customer reply this long: remind them.")
    pending_resolve: Duration | None = Field(
        None, description="This long after the reminder, still no reply: resolve it.")
    resolved_close: Duration | None = Field(None, description="Resolved this long: close it.")


class SurveySection(Section):
    enabled: bool = Field(False, description="Send satisfaction surveys after closing.")
    delay: Duration = Field(timedelta(hours=1), description="Wait this long after closing.")
    scale: Literal["1-5", "good-bad"] = "1-5"
    link_valid_days: int = Field(30, ge=1, description="A rating link works for this many "
                                 "days after the survey mail was sent; later it shows a page "
                                 "saying it has expired (410).")
    resurvey_days: int = Field(30, ge=0, description="Skip customers surveyed this recently.")
    lookback: Duration = Field(timedelta(days=7), description="Tickets closed longer ago "
                               "than delay+lookback are not surveyed (after long downtime).")

    @model_validator(mode="before")
    @classmethod
    def _http_moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "http" in data:
            raise ValueError("[survey] http moved to [http] public (the public listener, "
                             "apart from /healthz and /metrics on [http] listen)")
        return data
