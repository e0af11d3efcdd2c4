"""The broadcast-storm benchmark's exactly-once accounting (bench/storm/audit.py) catches what
it claims to: a doubled, lost, unapplied or foreign status, a wrong final status, a recipient
that does not follow its message, and campaign counts that disagree with the rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from bench.storm.audit import audit, furthest
from bench.storm.run import _utc_seconds

SIM = {"wamid.A": ["sent", "delivered", "read"], "wamid.B": ["sent", "delivered"]}
STORED = [
    ("status:wamid.A:sent", "done"),
    ("status:wamid.A:delivered", "done"),
    ("status:wamid.A:read", "done"),
    ("status:wamid.B:sent", "done"),
    ("status:wamid.B:delivered", "done"),
]
MESSAGES = {"wamid.A": "read", "wamid.B": "delivered"}
RECIPIENTS: list[tuple[str, str | None]] = [("read", "read"), ("delivered", "delivered")]
COUNTS = {"read": 1, "delivered": 1, "pending": 0, "total": 2}


def test_a_clean_run_passes() -> None:
    result = audit(SIM, STORED, MESSAGES, RECIPIENTS, COUNTS)
    assert result.problems() == []
    assert (result.expected, result.stored, result.applied) == (5, 5, 5)


def test_a_doubled_status_is_caught() -> None:
    result = audit(SIM, [*STORED, ("status:wamid.B:sent", "done")], MESSAGES, RECIPIENTS, COUNTS)
    assert result.duplicates == ["status:wamid.B:sent x2"]
    assert not result.ok


def test_a_lost_an_unapplied_and_a_foreign_status_are_caught() -> None:
    stored = [*STORED[:-1], ("status:wamid.Z:read", "done")]
    stored[0] = ("status:wamid.A:sent", "failed")
    result = audit(SIM, stored, MESSAGES, RECIPIENTS, COUNTS)
    assert result.missing == ["status:wamid.B:delivered"]
    assert result.extra == ["status:wamid.Z:read"]
    assert result.not_applied == ["status:wamid.A:sent (failed)"]


def test_a_wrong_final_status_and_a_stray_message_are_caught() -> None:
    messages = {"wamid.A": "delivered", "wamid.B": "delivered", "wamid.C": "sent"}
    result = audit(SIM, STORED, messages, RECIPIENTS, COUNTS)
    assert result.final_mismatch == ["wamid.A: db delivered, simulator read"]
    assert result.unknown_messages == ["wamid.C"]


def test_recipients_and_counts_must_agree_with_the_messages() -> None:
    recipients: list[tuple[str, str | None]] = [("delivered", "read"), ("delivered", "delivered")]
    result = audit(SIM, STORED, MESSAGES, recipients, COUNTS)
    assert result.recipient_mismatch == ["recipient delivered, message read"]
    assert sorted(result.counts_mismatch) == ["delivered: api 1, rows 2", "read: api 1, rows 0"]


def test_given_up_statuses_fail_the_audit() -> None:
    assert not audit(SIM, STORED, MESSAGES, RECIPIENTS, COUNTS, given_up=3).ok


def test_the_forward_only_rule() -> None:
    assert furthest(["read", "delivered", "sent"]) == "read"
    assert furthest(["sent", "failed"]) == "failed"
    assert furthest(["delivered", "failed"]) == "delivered"
    assert furthest(["failed", "read"]) == "failed"


def test_counts_still_moving_are_not_compared() -> None:
    result = audit(SIM, STORED, MESSAGES, RECIPIENTS, None)
    assert result.counts_mismatch == []
    assert not result.counts_compared


def test_stage_times_read_both_stores_timestamps_as_utc() -> None:
    """The customer-stage split (bench/storm/run.py `stages`) compares the rows' stamps with
    the bench's clock: SQLite's naive UTC text and PostgreSQL's datetimes give one instant."""
    instant = datetime(2026, 12, 7, 11, 0, 0, 123456, tzinfo=UTC)
    assert _utc_seconds("2026-12-07 11:00:00.123456") == instant.timestamp()
    assert _utc_seconds(instant.replace(tzinfo=None)) == instant.timestamp()
    assert _utc_seconds(instant.astimezone(timezone(timedelta(hours=2)))) == instant.timestamp()
