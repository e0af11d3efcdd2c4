"""The LINE simulator on its own, against a loopback receiver: signed webhooks, redelivery with
the same ids and reply token after a failed answer, duplicates, validation like LINE's, the
retry-key store, the content host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Receiver, eventually
from tidings.channels.line.webhook import signature
from tidings.simulators.line import LineSimulator, user_id_for

TOKEN = "sim-token"
SECRET = "sim-secret"


@pytest.fixture
async def sim() -> AsyncIterator[LineSimulator]:
    simulator = LineSimulator()
    yield simulator
    await simulator.aclose()


@pytest.fixture
async def api(sim: LineSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app),
        base_url="http://line",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as c:
        yield c


def bodies(receiver: Receiver) -> list[dict[str, Any]]:
    out = []
    for headers, body in receiver.requests:
        assert headers["x-line-signature"] == signature(SECRET, body)
        out.append(orjson.loads(body))
    return out


async def test_failed_answer_is_redelivered_with_the_same_ids(
    sim: LineSimulator, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    sim.ensure_account(
        TOKEN,
        SECRET,
        webhook_url=receiver.url,
        redelivery=True,
        redelivery_attempts=3,
        redelivery_base_seconds=0.05,
    )
    receiver.script = [(500, {}, b"")]
    r = await api.post("/_sim/inbound", json={"token": TOKEN, "user": "ana", "text": "hello"})
    assert r.status_code == 200

    async def two() -> list[dict[str, Any]] | None:
        got = bodies(receiver)
        return got if len(got) == 2 else None

    first, second = await eventually(two)
    [a], [b] = first["events"], second["events"]
    assert a["deliveryContext"] == {"isRedelivery": False}
    assert b["deliveryContext"] == {"isRedelivery": True}
    for key in ("webhookEventId", "replyToken", "timestamp", "message"):
        assert a[key] == b[key]
    assert a["source"] == {"type": "user", "userId": user_id_for("ana")}
    # The redelivered event's token works (once).
    reply = {"replyToken": a["replyToken"], "messages": [{"type": "text", "text": "hi"}]}
    ok = await api.post("/v2/bot/message/reply", json=reply)
    assert ok.status_code == 200 and ok.headers["x-line-request-id"]
    again = await api.post("/v2/bot/message/reply", json=reply)
    assert (again.status_code, again.json()) == (400, {"message": "Invalid reply token"})


async def test_without_redelivery_a_failed_answer_is_lost_and_duplicates_are_sent(
    sim: LineSimulator, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    sim.ensure_account(TOKEN, SECRET, webhook_url=receiver.url)
    receiver.script = [(500, {}, b"")]
    await api.post("/_sim/inbound", json={"token": TOKEN, "user": "ana", "text": "lost"})
    await api.post(
        "/_sim/inbound", json={"token": TOKEN, "user": "ana", "text": "twice", "duplicates": 1}
    )

    async def all_in() -> list[dict[str, Any]] | None:
        events = [e for b in bodies(receiver) for e in b["events"]]
        return events if len(events) == 3 else None

    events = await eventually(all_in)
    texts = [e["message"]["text"] for e in events]
    assert texts == ["lost", "twice", "twice"]
    assert events[1]["webhookEventId"] == events[2]["webhookEventId"]
    deliveries = (await api.get("/_sim/deliveries", params={"token": TOKEN})).json()
    assert [d["attempt"] for d in deliveries] == [1] * len(deliveries)


async def test_validation_and_retry_keys_like_line(
    sim: LineSimulator, api: httpx.AsyncClient
) -> None:
    acct = sim.ensure_account(TOKEN, SECRET)
    user = user_id_for("ana")
    sim.user(acct, user, "Ana")
    bad = await api.post("/v2/bot/message/push", json={"to": user, "messages": []})
    assert bad.status_code == 400
    assert bad.json()["details"] == [
        {"message": "Size must be between 1 and 5", "property": "messages"}
    ]
    too_long = await api.post(
        "/v2/bot/message/push",
        json={"to": user, "messages": [{"type": "text", "text": "x" * 5001}]},
    )
    assert too_long.json()["details"][0]["property"] == "messages[0].text"
    http_image = {
        "type": "image",
        "originalContentUrl": "http://x/a.jpg",
        "previewImageUrl": "http://x/a.jpg",
    }
    assert (
        await api.post("/v2/bot/message/push", json={"to": user, "messages": [http_image]})
    ).status_code == 400
    foreign = await api.post(
        "/v2/bot/message/push", json={"to": "U123", "messages": [{"type": "text", "text": "x"}]}
    )
    assert foreign.json() == {"message": "Failed to send messages"}
    unauthorised = await api.get("/v2/bot/message/quota", headers={"Authorization": "Bearer nope"})
    assert unauthorised.status_code == 401
    key = "123e4567-e89b-12d3-a456-426614174000"
    body = {"to": user, "messages": [{"type": "text", "text": "once"}]}
    first = await api.post("/v2/bot/message/push", json=body, headers={"X-Line-Retry-Key": key})
    again = await api.post("/v2/bot/message/push", json=body, headers={"X-Line-Retry-Key": key})
    assert first.status_code == 200 and again.status_code == 409
    assert again.headers["x-line-accepted-request-id"] == first.headers["x-line-request-id"]
    assert again.json()["sentMessages"] == first.json()["sentMessages"]
    assert [m["text"] for m in acct.thread] == ["once"]
    no_key_on_reply = await api.post(
        "/v2/bot/message/reply",
        json={"replyToken": "x", "messages": body["messages"]},
        headers={"X-Line-Retry-Key": key},
    )
    assert no_key_on_reply.status_code == 400


async def test_content_host_and_unsend(sim: LineSimulator, api: httpx.AsyncClient) -> None:
    sim.ensure_account(TOKEN, SECRET)
    sent = (
        await api.post(
            "/_sim/inbound",
            json={"token": TOKEN, "user": "ana", "image": {"mime_type": "image/png"}},
        )
    ).json()
    mid = sent["message_id"]
    got = await api.get(f"/v2/bot/message/{mid}/content")
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    transcoding = await api.get(f"/v2/bot/message/{mid}/content/transcoding")
    assert transcoding.status_code == 400
    await api.post(
        "/_sim/inbound", json={"token": TOKEN, "user": "ana", "event": "unsend", "message_id": mid}
    )
    assert (await api.get(f"/v2/bot/message/{mid}/content")).status_code == 410
    assert (await api.get("/v2/bot/message/1/content")).status_code == 404
