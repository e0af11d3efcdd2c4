"""Business hours per inbox: when a team is at work, in the inbox's own time zone.

Other features call these helpers (auto-replies, the `business_hours` rule condition, report
variants that count only working time):

    is_open(hours, at) -> bool
    hours_for_inbox(session, inbox_id) -> BusinessHours | None
    next_opening(hours, at) -> datetime | None
    open_seconds_between(hours, start, end) -> float

An inbox without business hours is always open (`is_open(None, at)` is True and
`open_seconds_between` is the plain elapsed time). A day's hours are intervals such as
`["09:00", "17:00"]`; `"24:00"` ends at midnight. An interval never crosses midnight: "22:00 to
02:00" is two intervals on two days. Holidays are local dates on which the inbox is closed.
Daylight-saving changes follow the IANA zone (zoneinfo): 09:00 is 09:00 local all year.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.domain.errors import InvalidInput
from tidings.storage.models import InboxBusinessHours

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
MAX_INTERVALS_PER_DAY = 6
MAX_HOLIDAYS = 400
# How far ahead `next_opening` looks before it decides the inbox never opens.
LOOKAHEAD_DAYS = 400

Interval = tuple[time, time | None]  # end None: midnight at the end of the day


@dataclass(frozen=True, slots=True)
class BusinessHours:
    timezone: str
    # Index 0 is Monday (datetime.weekday()).
    weekly: tuple[tuple[Interval, ...], ...]
    holidays: frozenset[date] = frozenset()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def as_json(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "weekly": {
                day: [[_clock(s), _clock(e)] for s, e in self.weekly[i]]
                for i, day in enumerate(WEEKDAYS)
            },
            "holidays": sorted(d.isoformat() for d in self.holidays),
        }


def _clock(t: time | None) -> str:
    return "24:00" if t is None else t.strftime("%H:%M")


def _parse_clock(value: Any, where: str) -> time | None:
    m = CLOCK.match(value) if isinstance(value, str) else None
    if m is None or (m.group(1) == "24" and m.group(2) != "00"):
        raise InvalidInput(f"{where}: a time like 09:00 (00:00 to 24:00)")
    if m.group(1) == "24":
        return None
    return time(int(m.group(1)), int(m.group(2)))


def parse_hours(timezone: Any, weekly: Any, holidays: Any = None) -> BusinessHours:
    """Validate hours as the API receives them; InvalidInput names the bad field."""
    if not isinstance(timezone, str) or not timezone or len(timezone) > 64 or "\x00" in timezone:
        raise InvalidInput("timezone: an IANA time zone such as Europe/Paris")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(f"timezone: unknown time zone {timezone[:64]!r}") from None
    if not isinstance(weekly, dict):
        raise InvalidInput('weekly: {"mon": [["09:00", "17:00"]], ...}')
    unknown = set(weekly) - set(WEEKDAYS)
    if unknown:
        raise InvalidInput(f"weekly: unknown day(s) {', '.join(sorted(map(str, unknown)))[:100]}")
    days: list[tuple[Interval, ...]] = []
    for day in WEEKDAYS:
        raw = weekly.get(day) or []
        if not isinstance(raw, list) or len(raw) > MAX_INTERVALS_PER_DAY:
            raise InvalidInput(f"weekly.{day}: up to {MAX_INTERVALS_PER_DAY} [start, end] pairs")
        intervals: list[Interval] = []
        for i, pair in enumerate(raw):
            where = f"weekly.{day}[{i}]"
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise InvalidInput(f"{where}: a [start, end] pair")
            start = _parse_clock(pair[0], where)
            end = _parse_clock(pair[1], where)
            if start is None:
                raise InvalidInput(f"{where}: a day cannot start at 24:00")
            if end is not None and end <= start:
                raise InvalidInput(
                    f"{where}: the end must be after the start (split a night shift in two days)"
                )
            intervals.append((start, end))
        intervals.sort(key=lambda iv: iv[0])
        for (_s1, e1), (s2, _e2) in itertools.pairwise(intervals):
            if e1 is None or e1 > s2:
                raise InvalidInput(f"weekly.{day}: intervals overlap")
        days.append(tuple(intervals))
    if holidays is None:
        holidays = []
    if not isinstance(holidays, list) or len(holidays) > MAX_HOLIDAYS:
        raise InvalidInput(f"holidays: a list of up to {MAX_HOLIDAYS} dates (YYYY-MM-DD)")
    parsed: set[date] = set()
    for i, value in enumerate(holidays):
        try:
            parsed.add(date.fromisoformat(value))
        except (TypeError, ValueError):
            raise InvalidInput(f"holidays[{i}]: a date like 2026-12-25") from None
    return BusinessHours(timezone, tuple(days), frozenset(parsed))


def _day_intervals(hours: BusinessHours, day: date) -> list[tuple[datetime, datetime]]:
    """The open intervals of a local calendar day, as aware UTC datetimes."""
    if day in hours.holidays:
        return []
    zone = hours.zone
    out = []
    for start, end in hours.weekly[day.weekday()]:
        a = datetime.combine(day, start, zone)
        b = (
            datetime.combine(day + timedelta(days=1), time(0), zone)
            if end is None
            else datetime.combine(day, end, zone)
        )
        out.append((a.astimezone(UTC), b.astimezone(UTC)))
    return out


def is_open(hours: BusinessHours | None, at: datetime) -> bool:
    """Whether the inbox is open at `at` (aware). No hours configured: always open."""
    if hours is None:
        return True
    local_day = at.astimezone(hours.zone).date()
    return any(a <= at < b for a, b in _day_intervals(hours, local_day))


def next_opening(hours: BusinessHours | None, at: datetime) -> datetime | None:
    """The first opening strictly after `at`; None if there is none within LOOKAHEAD_DAYS
    (or no hours are configured: then the inbox never closes)."""
    if hours is None:
        return None
    day = at.astimezone(hours.zone).date()
    for offset in range(LOOKAHEAD_DAYS):
        for a, _b in _day_intervals(hours, day + timedelta(days=offset)):
            if a > at:
                return a
    return None


def open_seconds_between(hours: BusinessHours | None, start: datetime, end: datetime) -> float:
    """Seconds of business time between `start` and `end` (e.g. a first response time that
    counts only working hours). No hours configured: the plain elapsed time."""
    if end <= start:
        return 0.0
    if hours is None:
        return (end - start).total_seconds()
    total = 0.0
    day = start.astimezone(hours.zone).date()
    last = end.astimezone(hours.zone).date()
    while day <= last:
        for a, b in _day_intervals(hours, day):
            lo, hi = max(a, start), min(b, end)
            if hi > lo:
                total += (hi - lo).total_seconds()
        day += timedelta(days=1)
    return total


def from_row(row: Any) -> BusinessHours | None:
    """BusinessHours from an `InboxBusinessHours` row (None when there is no row)."""
    if row is None:
        return None
    return parse_hours(row.timezone, row.weekly, row.holidays)


async def hours_for_inbox(session: AsyncSession, inbox_id: int) -> BusinessHours | None:
    return from_row(await session.get(InboxBusinessHours, inbox_id))
