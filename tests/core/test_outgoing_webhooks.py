"""Outgoing webhooks for integrators: signed, retried, logged, replayable."""

from __future__ import annotations

import httpx
import orjson

from tests.conftest import Owner, Receiver, Server, eventually
from tests.core.test_ingest import api_channel, msg, post_signed
from tidings import signing

SUB_SECRET = "subscriber-secret-0123456789"


async def test_signed_retried_logged_and_replayable(
    server: Server, owner: Owner, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    bad = await api.post(
        "/api/v1/webhook_subscriptions", json={"url": receiver.url, "events": ["nope"]}
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["message"].startswith("events:")
    sub = await api.post(
        "/api/v1/webhook_subscriptions",
        json={"url": receiver.url, "events": ["message.created"], "secret": SUB_SECRET},
    )
    assert sub.status_code == 201, sub.text
    sub_id = sub.json()["id"]

    receiver.script.append((500, {}, b"down for a moment"))
    channel_id = await api_channel(api)
    await post_signed(server, channel_id, {"messages": [msg("w-1", "dora", "ping", 1_750_000_000)]})

    async def delivered() -> list:
        log = (await api.get(f"/api/v1/webhook_subscriptions/{sub_id}/deliveries")).json()
        return log if log and log[0]["state"] == "delivered" else []

    log = await eventually(delivered, timeout=15)
    assert len(log) == 1  # only message.created was asked for, not conversation.created
    assert log[0]["attempts"] == 2 and log[0]["last_status"] == 200
    assert len(receiver.requests) == 2
    headers, body = receiver.requests[-1]
    signing.verify(SUB_SECRET, headers, body)  # raises if the signature is wrong
    assert headers["x-tidings-event"] == "message.created"
    assert headers["x-tidings-delivery"] == str(log[0]["id"])
    payload = orjson.loads(body)
    assert payload["event"] == "message.created"
    assert payload["data"]["body"] == "ping"

    replay = await api.post(f"/api/v1/webhook_deliveries/{log[0]['id']}/replay")
    assert replay.status_code == 200

    async def resent() -> bool:
        return len(receiver.requests) == 3

    await eventually(resent)
    assert receiver.requests[-1][1] == body  # the same event, byte for byte
    missing = await api.post("/api/v1/webhook_deliveries/999999/replay")
    assert missing.status_code == 404
