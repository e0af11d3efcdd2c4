"""Which customer replies count as a CSAT rating: only small exact patterns in free text (a
digit inside a sentence never does), a leading digit in a button or list choice."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tidings.actions.csat import parse_rating
from tidings.domain.enums import MessageKind
from tidings.domain.events import InboundMessage, Sender


def msg(text: str | None, kind: MessageKind = MessageKind.TEXT, **extra: Any) -> InboundMessage:
    return InboundMessage(
        "wamid.1", Sender("15550001111"), datetime.now(UTC), kind, text, extra=extra
    )


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("5", 5),
        (" 1 ", 1),
        ("4/5", 4),
        ("3 out of 5", 3),
        ("2!", 2),
        ("5\ufe0f\u20e3", 5),
        ("\u2b50\u2b50\u2b50", 3),
        ("0", None),
        ("6", None),
        ("55", None),
        ("I give it 5", None),
        ("order 5 is missing", None),
        ("5 stars", None),
        ("", None),
        (None, None),
    ],
)
def test_free_text(text: str | None, rating: int | None) -> None:
    assert parse_rating(msg(text)) == rating


def test_choices() -> None:
    button = msg("5 - Excellent", MessageKind.INTERACTIVE, type="button", payload="csat-5")
    assert parse_rating(button) == 5
    listed = msg("Good", MessageKind.INTERACTIVE, type="list_reply", id="csat:4", title="Good")
    assert parse_rating(listed) == 4
    titled = msg("3 Okay", MessageKind.INTERACTIVE, type="button_reply", id="x", title="3 Okay")
    assert parse_rating(titled) == 3
    other = msg("Billing", MessageKind.INTERACTIVE, type="list_reply", id="billing", title="10")
    assert parse_rating(other) is None
