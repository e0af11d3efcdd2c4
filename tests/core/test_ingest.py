"""The inbound pipeline through real HTTP: durability, dedupe, batching, bad input, replay."""

from __future__ import annotations

import httpx
import orjson
from sqlalchemy import func, select

from tests import factories
from tests.conftest import Owner, Server, eventually
from tidings import signing
from tidings.storage.models import InboundEvent, Message

SECRET = "ingest-test-secret-0123456789"


async def api_channel(api: httpx.AsyncClient, webhook_url: str | None = None) -> int:
    channel = await factories.api_channel(
        api, secret=SECRET, webhook_url=webhook_url, name="Ingest"
    )
    return int(channel["id"])


async def post_signed(server: Server, channel_id: int, payload: object | bytes) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{server.url}/webhooks/api/{channel_id}",
            content=body,
            headers={"Content-Type": "application/json", **signing.sign_headers(SECRET, body)},
        )


async def count(server: Server, model: type) -> int:
    async with server.runtime.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


def msg(mid: str, user: str, text: str, ts: int) -> dict:
    return {"id": mid, "from": {"id": user, "name": user.title()}, "text": text, "timestamp": ts}


async def test_batch_every_message_and_duplicates_change_nothing(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel_id = await api_channel(api)
    batch = {
        "messages": [
            msg(f"m{i}", f"user{i % 3}", f"hello {i}", 1_750_000_000 + i) for i in range(7)
        ]
    }
    first = await post_signed(server, channel_id, batch)
    assert first.status_code == 200
    # Acknowledged means stored: the events are in the table the moment the 200 arrives.
    assert await count(server, InboundEvent) == 7
    again = await post_signed(server, channel_id, batch)
    assert again.status_code == 200
    assert await count(server, InboundEvent) == 7

    async def all_processed() -> bool:
        return await count(server, Message) == 7

    await eventually(all_processed)
    convs = (await api.get("/api/v1/conversations")).json()["data"]
    assert len(convs) == 3  # three customers, one conversation each
    await post_signed(server, channel_id, batch)
    async with server.runtime.db.read() as s:
        done = await s.scalar(
            select(func.count()).select_from(InboundEvent).where(InboundEvent.state == "done")
        )
    assert done == 7
    assert await count(server, Message) == 7


async def test_thread_follows_provider_timestamps(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel_id = await api_channel(api)
    # Delivered out of order, as providers do: the later message first.
    await post_signed(
        server, channel_id, {"messages": [msg("late", "ana", "second", 1_750_000_100)]}
    )
    await post_signed(
        server, channel_id, {"messages": [msg("early", "ana", "first", 1_750_000_050)]}
    )

    async def thread() -> list:
        convs = (await api.get("/api/v1/conversations")).json()["data"]
        if not convs:
            return []
        data = (await api.get(f"/api/v1/conversations/{convs[0]['id']}/messages")).json()["data"]
        return data if len(data) == 2 else []

    messages = await eventually(thread)
    assert [m["body"] for m in messages] == ["first", "second"]


async def test_bad_input(server: Server, owner: Owner, api: httpx.AsyncClient) -> None:
    channel_id = await api_channel(api)
    async with httpx.AsyncClient() as client:
        unknown = await client.post(f"{server.url}/webhooks/api/999999", content=b"{}")
        wrong_kind = await client.post(
            f"{server.url}/webhooks/whatsapp/{channel_id}", content=b"{}"
        )
        big = b"x" * 1_000_001
        too_large = await client.post(
            f"{server.url}/webhooks/api/{channel_id}",
            content=big,
            headers=signing.sign_headers(SECRET, big),
        )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_channel"
    assert wrong_kind.status_code == 404
    assert too_large.status_code == 413
    assert await count(server, InboundEvent) == 0


async def test_signed_garbage_is_kept_failed_and_replayable(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel_id = await api_channel(api)
    not_json = await post_signed(server, channel_id, b"this is not json")
    assert not_json.status_code == 200  # acknowledged so the provider stops retrying
    # Valid JSON, but the message has no sender: fails in the worker, not at the door.
    bad_message = await post_signed(
        server, channel_id, {"messages": [{"id": "x1", "text": "no sender"}]}
    )
    assert bad_message.status_code == 200

    async def failed() -> list:
        resp = await api.get("/api/v1/inbound_events", params={"state": "failed"})
        data = resp.json()
        return data if len(data) == 2 else []

    events = await eventually(failed)
    errors = sorted(e["error"] for e in events)
    assert any("not JSON" in e for e in errors)
    assert any("from.id is required" in e for e in errors)
    assert await count(server, Message) == 0

    replay = await api.post("/api/v1/inbound_events/replay", json={})
    assert replay.json() == {"count": 2}

    async def failed_again() -> bool:
        data = (await api.get("/api/v1/inbound_events", params={"state": "failed"})).json()
        return len(data) == 2 and all(e["attempts"] == 1 for e in data)

    # Still broken (nothing was fixed), so both fail again — visibly, with their errors.
    await eventually(failed_again)
