"""The test suite's own layout (issue 17, item 12): every channel kind can be created through
`tests/factories.py`, and every kind has provider payload fixtures under
`tests/fixtures/<kind>/`, except the kinds named in WITHOUT_FIXTURES. That list may only shrink:
a new kind without fixtures fails here, and so does a listed kind that gained some (take it off
the list). Every kind also runs the contract suite and is held to the import contract that no
channel imports another (docs/adding-a-channel.md lists what a new channel needs)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests import factories
from tests.contract.drivers import DRIVERS
from tidings.channels.registry import get_adapter, kinds

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


def test_every_kind_runs_the_contract_suite() -> None:
    assert sorted(d.kind for d in DRIVERS) == kinds()


def test_every_channel_package_is_held_to_independence() -> None:
    # A package missing from the contract's list would be free to import another channel.
    pyproject = tomllib.loads((FIXTURES.parents[1] / "pyproject.toml").read_text("utf-8"))
    contract = next(
        c
        for c in pyproject["tool"]["importlinter"]["contracts"]
        if c["id"] == "channels-independent"
    )
    packages = {".".join(type(get_adapter(k)).__module__.split(".")[:3]) for k in kinds()}
    assert packages <= set(contract["modules"])
