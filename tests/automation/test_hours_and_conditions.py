"""Pure parts: business-hours arithmetic (time zones, DST, holidays, night shifts split in two
days) and condition evaluation on untrusted text (bounded patterns, language detection)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings.automation import hours as bh
from tidings.automation.kinds import Facts, check, detect_language, evaluate
from tidings.domain.errors import InvalidInput

PARIS = bh.parse_hours(
    "Europe/Paris",
    {
        "mon": [["09:00", "12:00"], ["14:00", "18:00"]],
        "fri": [["22:00", "24:00"]],
        "sat": [["00:00", "02:00"]],
    },
    ["2026-12-25"],
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_open_and_closed_in_the_inbox_time_zone() -> None:
    # Monday 2026-11-30: Paris is UTC+1 in winter.
    assert bh.is_open(PARIS, utc(2026, 11, 30, 8, 0)) is True  # 09:00 Paris
    assert bh.is_open(PARIS, utc(2026, 11, 30, 7, 59)) is False  # 08:59 Paris
    assert bh.is_open(PARIS, utc(2026, 11, 30, 11, 30)) is False  # lunch, 12:30 Paris
    assert bh.is_open(PARIS, utc(2026, 11, 30, 16, 59)) is True
    assert bh.is_open(PARIS, utc(2026, 11, 30, 17, 0)) is False  # 18:00 Paris: closed
    # Summer time (UTC+2): 09:00 Paris is 07:00 UTC.
    assert bh.is_open(PARIS, utc(2026, 6, 29, 7, 0)) is True
    assert bh.is_open(PARIS, utc(2026, 6, 29, 6, 59)) is False
    # A night shift written as two days: Friday 22:00 → Saturday 02:00.
    assert bh.is_open(PARIS, utc(2026, 12, 4, 22, 30)) is True  # Fri 23:30 Paris
    assert bh.is_open(PARIS, utc(2026, 12, 5, 0, 30)) is True  # Sat 01:30 Paris
    assert bh.is_open(PARIS, utc(2026, 12, 5, 1, 0)) is False  # Sat 02:00 Paris
    assert bh.is_open(None, utc(2026, 1, 1, 3, 0)) is True


def test_holidays_next_opening_and_business_time() -> None:
    # Friday 2026-12-25 is a holiday: the night shift does not open.
    assert bh.is_open(PARIS, utc(2026, 12, 25, 21, 30)) is False
    # From Monday lunch, the next opening is 14:00 Paris the same day.
    assert bh.next_opening(PARIS, utc(2026, 11, 30, 11, 30)) == utc(2026, 11, 30, 13, 0)
    # From Monday evening, the next opening is Friday 22:00 Paris.
    assert bh.next_opening(PARIS, utc(2026, 11, 30, 18, 0)) == utc(2026, 12, 4, 21, 0)
    assert bh.next_opening(None, utc(2026, 11, 30, 18, 0)) is None
    closed = bh.parse_hours("UTC", {})
    assert bh.next_opening(closed, utc(2026, 11, 30)) is None
    # Monday 08:00 → 15:00 UTC = 09:00 → 16:00 Paris: 3 h morning + 2 h afternoon.
    assert bh.open_seconds_between(PARIS, utc(2026, 11, 30, 8), utc(2026, 11, 30, 15)) == 5 * 3600
    assert bh.open_seconds_between(None, utc(2026, 11, 30, 8), utc(2026, 11, 30, 9)) == 3600
    assert bh.open_seconds_between(PARIS, utc(2026, 11, 30, 9), utc(2026, 11, 30, 8)) == 0


@pytest.mark.parametrize(
    ("timezone", "weekly", "holidays", "field"),
    [
        ("Nowhere/City", {}, None, "timezone"),
        ("UTC", {"mon": [["09:00"]]}, None, "weekly.mon[0]"),
        ("UTC", {"mon": [["24:00", "24:00"]]}, None, "weekly.mon[0]"),
        ("UTC", {"mon": [["10:00", "09:00"]]}, None, "weekly.mon[0]"),
        ("UTC", {"mon": [["09:00", "24:30"]]}, None, "weekly.mon[0]"),
        ("UTC", {"mon": [["08:00", "24:00"], ["09:00", "10:00"]]}, None, "overlap"),
        ("UTC", {}, ["2026-02-30"], "holidays[0]"),
    ],
)
def test_bad_hours_name_the_field(
    timezone: str, weekly: dict, holidays: list | None, field: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        bh.parse_hours(timezone, weekly, holidays)
    assert field in err.value.message


def facts(text: str, **extra: object) -> Facts:
    values: dict = {
        "workspace_id": 1,
        "conversation_id": 1,
        "inbox_id": 1,
        "channel_kind": "whatsapp",
        "text": text,
        "contact_attributes": {"tier": "Gold", "orders": 3},
        "labels": {"vip"},
        "inside_hours": False,
    }
    values.update(extra)
    return Facts(**values)


def test_patterns_on_hostile_text_are_bounded() -> None:
    # A catastrophic-backtracking pattern against a text built to trigger it: the match is
    # cut off by the timeout and counts as "no match"; it never hangs the worker.
    evil = {"type": "text_matches", "pattern": r"^(a+)+$"}
    ok, why = check(evil, facts("a" * 3000 + "!"))
    assert ok is False
    assert why in ("pattern timed out (treated as no match)", "no match")
    assert check({"type": "text_matches", "pattern": r"order\s+#?\d{4,}"}, facts("Order #12345"))[0]


def test_conditions() -> None:
    f = facts("Hola, ¿dónde está mi pedido? Lo necesito para mañana por la mañana.")
    assert detect_language(f.text) == "es"
    assert detect_language("ok") is None  # too short to guess
    assert check({"type": "language", "values": ["es"]}, f)[0] is True
    assert check({"type": "language", "values": ["en"]}, f)[0] is False
    assert check({"type": "contact_attribute", "key": "tier", "value": "gold"}, f)[0] is True
    assert check({"type": "contact_attribute", "key": "orders", "value": 3}, f)[0] is True
    assert check({"type": "contact_attribute", "key": "missing", "value": "x"}, f)[0] is False
    assert check({"type": "label", "name": "vip"}, f)[0] is True
    assert check({"type": "label", "name": "vip", "negate": True}, f)[0] is False
    assert check({"type": "business_hours", "inside": False}, f)[0] is True
    assert check({"type": "text_contains", "values": ["PEDIDO"]}, f)[0] is True
    assert check({"type": "channel_kind", "values": ["telegram"]}, f)[0] is False
    rule = {
        "match": "any",
        "conditions": [
            {"type": "channel_kind", "values": ["telegram"]},
            {"type": "label", "name": "vip"},
        ],
    }
    assert evaluate(rule, f)[0] is True
    assert evaluate({**rule, "match": "all"}, f)[0] is False
    assert evaluate({"match": "all", "conditions": []}, f)[0] is True
