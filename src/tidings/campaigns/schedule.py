"""Quiet hours in the recipient's own time zone.

The zone is the contact's `timezone` attribute when it names a real IANA zone, else the one
`phonenumbers` gives for the phone number's prefix when there is exactly one (a German mobile
is Europe/Berlin; a US number may be one of several and then counts as unknown), else UTC.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone

from tidings.domain.errors import InvalidInput

UTC_ZONE = ZoneInfo("UTC")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def zone_for(phone_e164: str | None, attributes: dict[str, Any] | None) -> tzinfo:
    name = (attributes or {}).get("timezone")
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    if phone_e164:
        try:
            number = phonenumbers.parse(phone_e164, None)
        except phonenumbers.NumberParseException:
            return UTC_ZONE
        zones = phone_timezone.time_zones_for_number(number)
        if len(zones) == 1 and zones[0] != "Etc/Unknown":
            try:
                return ZoneInfo(zones[0])
            except (ZoneInfoNotFoundError, ValueError):
                return UTC_ZONE
    return UTC_ZONE


def parse_quiet_hours(raw: dict[str, Any] | None) -> tuple[time, time] | None:
    """{"start": "21:00", "end": "08:00"} → (21:00, 08:00); {} or None → no quiet hours."""
    if not raw:
        return None
    start, end = raw.get("start"), raw.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        raise InvalidInput('quiet_hours: give {"start": "HH:MM", "end": "HH:MM"}')
    parsed = []
    for name, value in (("start", start), ("end", end)):
        m = _HHMM.match(value)
        if m is None:
            raise InvalidInput(f"quiet_hours.{name}: {value!r} is not HH:MM (24-hour clock)")
        parsed.append(time(int(m.group(1)), int(m.group(2))))
    if parsed[0] == parsed[1]:
        raise InvalidInput("quiet_hours: start and end are the same time")
    return parsed[0], parsed[1]


def next_allowed(now: datetime, zone: tzinfo, quiet: tuple[time, time] | None) -> datetime | None:
    """None when `now` is outside the recipient's quiet hours; else the UTC instant they end."""
    if quiet is None:
        return None
    start, end = quiet
    local = now.astimezone(zone)
    t = local.time()
    inside = (start <= t < end) if start < end else (t >= start or t < end)
    if not inside:
        return None
    end_day = local.date()
    if start > end and t >= start:
        end_day = end_day + timedelta(days=1)
    # Wall-clock end in the recipient's zone; DST gaps resolve forward through fold rules.
    ends = datetime.combine(end_day, end, tzinfo=zone)
    return ends.astimezone(now.tzinfo)
