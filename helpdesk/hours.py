"""Business hours: a time zone, weekly opening hours and holidays.

The shape is the one `[business_hours]` and `[queue.NAME.business_hours]` take in
helpdesk.toml:

    timezone = "Europe/Berlin"
    week = { mon = "08:00-18:00", fri = "08:00-12:00, 13:00-16:00" }
    holidays = ["2026-12-24", "2026-12-25"]

Days missing from `week` are closed. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from helpdesk.errors import HelpdeskError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_KEYS = {"timezone", "week", "holidays"}


class HoursError(HelpdeskError, ValueError):
    """A business-hours table is invalid; the message names the key."""


@dataclass(frozen=True)
class BusinessHours:
    timezone: str
    # per weekday (0 = Monday): opening spans as (start, end), end exclusive
    week: tuple[tuple[tuple[time, time], ...], ...]
    holidays: frozenset[date]

    def is_open(self, moment: datetime) -> bool:
        """Whether `moment` (naive means UTC) falls inside the opening hours."""
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        local = aware.astimezone(ZoneInfo(self.timezone))
        if local.date() in self.holidays:
            return False
        now = local.time().replace(tzinfo=None)
        return any(start <= now < end for start, end in self.week[local.weekday()])

    def open_spans(self, start: datetime, end: datetime | None = None
                   ) -> Iterator[tuple[datetime, datetime]]:
        """The opening spans (UTC) from `start` until `end`, clipped to both.

        Gives up after SEARCH_DAYS of calendar so a table with no opening at all
        cannot loop forever.
        """
        tz = ZoneInfo(self.timezone)
        day = start.astimezone(tz).date()
        for _ in range(SEARCH_DAYS):
            if end is not None and _local(day, time(0), tz) >= end:
                return
            if day not in self.holidays:
                for open_at, close_at in self.week[day.weekday()]:
                    a = max(start, _local(day, open_at, tz))
                    b = _local(day + _DAY, time(0), tz) if close_at == time.max \
                        else _local(day, close_at, tz)
                    b = min(b, end) if end is not None else b
                    if a < b:
                        yield a, b
            day += _DAY


SEARCH_DAYS = 3700
_DAY = timedelta(days=1)


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tz).astimezone(UTC)


def business_time(hours: BusinessHours | None, start: datetime, end: datetime) -> timedelta:
    """Open time between two moments; None means around the clock."""
    if end <= start:
        return timedelta(0)
    if hours is None:
        return end - start
    return sum((b - a for a, b in hours.open_spans(start, end)), timedelta(0))


def add_business_time(hours: BusinessHours | None, start: datetime,
                      amount: timedelta) -> datetime | None:
    """The moment `amount` of open time after `start`; None if the hours never open."""
    if hours is None:
        return start + amount
    remaining = amount
    for a, b in hours.open_spans(start):
        if b - a >= remaining:
            return a + remaining
        remaining -= b - a
    return None


def parse_hours(data: Mapping[str, Any]) -> BusinessHours:
    """Validate a business-hours table; raises HoursError naming the key."""
    unknown = set(data) - _KEYS
    if unknown:
        raise HoursError(f"{sorted(unknown)[0]}: unknown key (expected {sorted(_KEYS)})")
    tz = data.get("timezone", "UTC")
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursError(f"timezone: unknown time zone {tz!r}") from None
    return BusinessHours(
        str(tz), _parse_week(data.get("week", {})), _parse_holidays(data.get("holidays", []))
    )


def _parse_week(week: Any) -> tuple[tuple[tuple[time, time], ...], ...]:
    if not isinstance(week, Mapping):
        raise HoursError('week: must be a table like { mon = "08:00-18:00" }')
    bad = [k for k in week if k.lower() not in DAYS]
    if bad:
        raise HoursError(f"week.{bad[0]}: unknown day (use {', '.join(DAYS)})")
    lowered = {k.lower(): v for k, v in week.items()}
    return tuple(_parse_spans(day, lowered.get(day, "")) for day in DAYS)


def _parse_spans(day: str, text: Any) -> tuple[tuple[time, time], ...]:
    if not isinstance(text, str):
        raise HoursError(f'week.{day}: must be a string like "08:00-18:00"')
    spans = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            start_s, end_s = part.split("-")
            start = time.fromisoformat(start_s.strip())
            end_s = end_s.strip()
            end = time.max if end_s in ("24:00", "24:00:00") else time.fromisoformat(end_s)
        except ValueError:
            raise HoursError(f'week.{day}: {part!r} is not like "08:00-18:00"') from None
        if end <= start:
            raise HoursError(f"week.{day}: {part!r} ends before it starts")
        spans.append((start, end))
    return tuple(spans)


def _parse_holidays(items: Any) -> frozenset[date]:
    if not isinstance(items, list):
        raise HoursError('holidays: must be a list of dates like "2026-12-24"')
    days = set()
    for item in items:
        if isinstance(item, date):
            days.add(item)
            continue
        try:
            days.add(date.fromisoformat(str(item)))
        except ValueError:
            raise HoursError(f"holidays: {item!r} is not a date like 2026-12-24") from None
    return frozenset(days)
