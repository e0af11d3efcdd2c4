"""The test suite's own layout (issue 17, item 12): every channel kind can be created through
`tests/factories.py`, and every kind has provider payload fixtures under
`tests/fixtures/<kind>/`, except the kinds named in WITHOUT_FIXTURES. That list may only shrink:
a new kind without fixtures fails here, and so does a listed kind that gained some (take it off
the list)."""

from __future__ import annotations

from pathlib import Path

from tests import factories
from tidings.channels.registry import kinds

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# No recorded provider payloads yet: their tests build the requests inline or drive the
# simulator (the contract drivers in tests/contract/ cover all five cases for each).
WITHOUT_FIXTURES = {"api", "gbm", "rbm", "smpp", "twilio", "vonage"}


def test_every_kind_has_fixtures_or_is_listed() -> None:
    have = {d.name for d in FIXTURES.iterdir() if d.is_dir() and any(d.glob("*.json"))}
    assert set(kinds()) - have == WITHOUT_FIXTURES
    assert not have - set(kinds()), "fixture folders for kinds that do not exist"


def test_every_kind_has_a_factory() -> None:
    missing = [
        kind for kind in kinds() if not callable(getattr(factories, f"{kind}_channel", None))
    ]
    assert missing == []
