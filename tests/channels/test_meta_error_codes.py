"""Every Graph error code the issue names (and the rest of the tables in
docs/channels/whatsapp.md#error-codes and docs/channels/messenger.md#error-codes) maps to
retriable or permanent with a sentence an agent can act on; and the mapping holds end to end:
the simulator answers with the real error envelope and the agent reads the sentence."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests import factories
from tests.conftest import Owner, Server, eventually
from tidings.channels.base import Permanent, Retriable
from tidings.channels.meta_common import GraphError
from tidings.channels.meta_common.messaging_errors import instagram_outcome
from tidings.channels.meta_common.messaging_errors import outcome_for as messenger_outcome
from tidings.channels.whatsapp.errors import failure_reason
from tidings.channels.whatsapp.errors import outcome_for as whatsapp_outcome

# (code, retriable, words the agent reads) — docs/channels/whatsapp.md#error-codes.
WHATSAPP = [
    (131047, False, "24-hour customer service window has closed; send an approved template"),
    (131026, False, "could not be delivered"),
    (130429, True, "faster than WhatsApp allows"),
    (131056, True, "Too many messages to this customer"),
    (100, False, "rejected the message as invalid"),
    (190, False, "reconnect the channel"),
    (0, False, "reconnect the channel"),
    (4, True, "Too many requests"),
    (613, True, "rate limit"),
    (80007, True, "rate limit"),
    (131000, True, "will be retried"),
    (131016, True, "temporarily unavailable"),
    (131057, True, "maintenance"),
    (131049, False, "try again tomorrow"),
    (131050, False, "opted out of marketing"),
    (131051, False, "does not support this type"),
    (131053, False, "attachment"),
    (132000, False, "do not match"),
    (132001, False, "does not exist or is not approved"),
    (132015, False, "paused"),
    (132016, False, "disabled"),
    (368, False, "blocked"),
    (131031, False, "locked"),
    (137000, False, "identity changed"),
]

# (code, subcode, retriable, words) — docs/channels/messenger.md#error-codes.
MESSENGER = [
    (10, 2018278, False, "24-hour Messenger window has closed"),
    (551, 1545041, False, "not available on Messenger"),
    (551, None, False, "not available on Messenger"),
    (100, 2018001, False, "no such person"),
    (100, None, False, "rejected the message as invalid"),
    (190, None, False, "reconnect the channel"),
    (10, None, False, "not allowed to message"),
    (200, None, False, "not allowed to message"),
    (230, None, False, "settings do not allow"),
    (1, None, True, "will be retried"),
    (1, 1357046, False, "invalid JSON"),
    (2, None, True, "temporarily unavailable"),
    (4, None, True, "Too many requests"),
    (613, None, True, "faster than Messenger allows"),
    (17, None, True, "Too many requests"),
    (32, None, True, "Too many requests"),
    (368, None, False, "abusive"),
    (10903, None, False, "cannot reply"),
]


def _graph(code: int, subcode: int | None, status: int = 400) -> GraphError:
    return GraphError(status, code, subcode, f"(#{code}) Graph says no", None, None)


@pytest.mark.parametrize(("code", "retriable", "words"), WHATSAPP)
def test_whatsapp_codes(code: int, retriable: bool, words: str) -> None:
    outcome = whatsapp_outcome(code, http_status=400, title=f"(#{code}) title")
    assert isinstance(outcome, Retriable if retriable else Permanent)
    assert words in outcome.reason, outcome.reason
    assert outcome.code == str(code)
    # The same code in a `failed` status webhook reads the same way.
    assert words in failure_reason(code, "title", "details"), failure_reason(code)


@pytest.mark.parametrize(("code", "subcode", "retriable", "words"), MESSENGER)
def test_messenger_codes(code: int, subcode: int | None, retriable: bool, words: str) -> None:
    outcome = messenger_outcome(_graph(code, subcode))
    assert isinstance(outcome, Retriable if retriable else Permanent)
    assert words in outcome.reason, outcome.reason
    if retriable:
        assert isinstance(outcome, Retriable) and outcome.retry_after is not None


@pytest.mark.parametrize("subcode", [2018278, 2534022])
def test_instagram_window_codes(subcode: int) -> None:
    outcome = instagram_outcome(_graph(10, subcode))
    assert isinstance(outcome, Permanent)
    assert "24-hour Instagram window has closed" in outcome.reason
    # Instagram reads the Messenger table in its own name.
    other = instagram_outcome(_graph(551, 1545041))
    assert "not available on Instagram" in other.reason


def test_unknown_codes_decide_on_the_http_status() -> None:
    assert isinstance(whatsapp_outcome(999999, http_status=503), Retriable)
    assert isinstance(whatsapp_outcome(999999, http_status=400, title="odd"), Permanent)
    assert isinstance(messenger_outcome(_graph(999999, None, 500)), Retriable)
    refused = messenger_outcome(_graph(999999, None, 400))
    assert isinstance(refused, Permanent) and "Graph says no" in refused.reason


async def _failed_reason(api: httpx.AsyncClient, conv_id: int) -> tuple[str, str] | None:
    msgs = (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]
    out = [m for m in msgs if m["direction"] == "out"]
    if out and out[-1]["status"] == "failed":
        return out[-1]["error_code"], out[-1]["error_reason"]
    return None


async def test_codes_reach_the_agent_through_the_simulators(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channels: dict[str, dict[str, Any]] = {
        "whatsapp": {
            "phone_number_id": "106540352242922",
            "access_token": "EAAG-token",
            "app_secret": "wa-secret",
            "verify_token": "v",
        },
        "messenger": {
            "page_id": "104857600000001",
            "page_access_token": "EAAB-page",
            "app_secret": "m-secret",
            "verify_token": "v",
        },
    }
    for kind, config in channels.items():
        config["api_base_url"] = f"{server.url}/sandbox/{kind}"
        resp = await api.post(
            "/api/v1/channels", json={"kind": kind, "name": kind, "config": config}
        )
        assert resp.status_code == 201, resp.text
    wa = factories.simulator(server, "whatsapp")
    fb = factories.simulator(server, "messenger")
    await wa.post(
        "/_sim/inbound",
        json={"phone_number_id": "106540352242922", "from": "16505551234", "text": "hi"},
    )
    await fb.post(
        "/_sim/inbound",
        json={"account_id": "104857600000001", "from": "6543210987654321", "text": "hi"},
    )

    async def two() -> list[Any] | None:
        data: list[Any] = (await api.get("/api/v1/conversations")).json()["data"]
        return data if len(data) == 2 else None

    convs = {c["last_channel_id"]: c["id"] for c in await eventually(two)}
    ids = {c["kind"]: c["id"] for c in (await api.get("/api/v1/channels")).json()}

    cases = [
        # 131026 arrives as a `failed` status after a 200
        # (docs/channels/whatsapp.md#status-webhooks).
        (wa, {"code": 131026, "mode": "async"}, "whatsapp", "131026", "could not be delivered"),
        (
            wa,
            {"code": 100, "details": "Param text['body'] is invalid"},
            "whatsapp",
            "100",
            "rejected the message as invalid: Param text['body'] is invalid",
        ),
        (fb, {"code": 551, "subcode": 1545041}, "messenger", "551", "not available on Messenger"),
    ]
    for sim, failure, kind, code, words in cases:
        assert (await sim.post("/_sim/fail", json=failure)).status_code == 200
        conv_id = convs[ids[kind]]
        reply = await api.post(
            f"/api/v1/conversations/{conv_id}/messages", json={"text": f"try {code}"}
        )
        assert reply.status_code == 201, reply.text

        async def failed(conv_id: int = conv_id, text: str = f"try {code}") -> Any:
            got = await _failed_reason(api, conv_id)
            return got if got else None

        error_code, reason = await eventually(failed)
        assert error_code == code
        assert words in reason, reason
