"""Issue 2's end-to-end proof over real HTTP with the WhatsApp simulator: signed webhook →
message in the API → duplicate changes nothing → bad signature stores nothing → agent reply →
correct Graph request → statuses to delivered/read; a batched payload yields everything."""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
import orjson
from sqlalchemy import func, select

from tests import factories
from tests.conftest import Owner, Server, eventually
from tidings.storage.models import Delivery, InboundEvent, Message

PNID = "106540352242922"
APP_SECRET = "wa-app-secret-for-tests"
TOKEN = "EAAG-test-access-token"


async def whatsapp_channel(server: Server, api: httpx.AsyncClient) -> dict:
    return await factories.whatsapp_channel(
        api,
        server,
        phone_number_id=PNID,
        access_token=TOKEN,
        app_secret=APP_SECRET,
        display_phone_number="15550783881",
    )


async def count(server: Server, model: type) -> int:
    async with server.runtime.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def thread(api: httpx.AsyncClient, conv_id: int) -> list[dict]:
    return (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]


async def test_whatsapp_round_trip(server: Server, owner: Owner, api: httpx.AsyncClient) -> None:
    channel = await whatsapp_channel(server, api)
    webhook = channel["webhook_url"]
    sim = factories.simulator(server, "whatsapp")

    # The Meta verification handshake against our GET endpoint.
    async with httpx.AsyncClient() as client:
        ok = await client.get(
            webhook,
            params={
                "hub.mode": "subscribe",
                "hub.challenge": "1158201444",
                "hub.verify_token": "verify-me",
            },
        )
        bad = await client.get(
            webhook,
            params={"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "nope"},
        )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert bad.status_code == 403

    sent = await sim.post(
        "/_sim/inbound",
        json={
            "phone_number_id": PNID,
            "from": "16505551234",
            "name": "Sheena",
            "text": "Does it come in blue?",
        },
    )
    assert sent.json()["status"] == 200
    wamid = sent.json()["id"]

    async def conversation() -> list:
        return (await api.get("/api/v1/conversations")).json()["data"]

    conv = (await eventually(conversation))[0]
    messages = await eventually(lambda: _nonempty(thread(api, conv["id"])))
    assert [(m["direction"], m["body"], m["provider_message_id"]) for m in messages] == [
        ("in", "Does it come in blue?", wamid)
    ]
    contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
    assert contact["name"] == "Sheena"
    assert contact["phone"] == "+16505551234"

    # Meta retries: the same message again changes nothing.
    again = await sim.post(
        "/_sim/inbound",
        json={
            "phone_number_id": PNID,
            "from": "16505551234",
            "name": "Sheena",
            "text": "Does it come in blue?",
            "id": wamid,
        },
    )
    assert again.json()["status"] == 200
    await sim.post("/_sim/flush", params={"timeout": 5})
    assert await count(server, InboundEvent) == 1
    assert len(await thread(api, conv["id"])) == 1

    # A forged webhook: rejected, nothing stored.
    forged = orjson.dumps({"object": "whatsapp_business_account", "entry": []})
    async with httpx.AsyncClient() as client:
        wrong = await client.post(
            webhook,
            content=forged,
            headers={
                "X-Hub-Signature-256": "sha256=" + "0" * 64,
                "Content-Type": "application/json",
            },
        )
        unsigned = await client.post(
            webhook, content=forged, headers={"Content-Type": "application/json"}
        )
    assert (wrong.status_code, unsigned.status_code) == (401, 401)
    assert await count(server, InboundEvent) == 1

    # The agent replies; the simulator receives Meta's exact request shape.
    reply = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Yes — navy and sky blue."}
    )
    assert reply.status_code == 201, reply.text
    reply_id = reply.json()["id"]

    async def graph_requests() -> list:
        return (await sim.get("/_sim/sent", params={"phone_number_id": PNID})).json()

    request = (await eventually(graph_requests))[0]
    assert request["path"] == f"/sandbox/whatsapp/v25.0/{PNID}/messages"
    body = request["body"]
    assert body["messaging_product"] == "whatsapp"
    assert body["to"] == "+16505551234"
    assert body["type"] == "text"
    assert body["text"]["body"] == "Yes — navy and sky blue."
    assert body["biz_opaque_callback_data"] == str(reply_id)
    assert request["response"]["status"] == 200

    async def read() -> dict | None:
        m = next(m for m in await thread(api, conv["id"]) if m["id"] == reply_id)
        return m if m["status"] == "read" else None

    final = await eventually(read)
    assert final["provider_message_id"] == request["response"]["body"]["messages"][0]["id"]
    await sim.aclose()


async def _nonempty(coro: object) -> list:
    result = await coro  # type: ignore[misc]
    return result if result else []


async def test_batched_payload_yields_every_message_and_status(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    sim = factories.simulator(server, "whatsapp")
    # Three customers, five messages, across two entries; plus statuses for two of ours.
    customers = [("4915112345678", "Ana"), ("447700900123", "Ben"), ("33612345678", "Chloé")]
    specs = [
        {
            "from": customers[i % 3][0],
            "name": customers[i % 3][1],
            "text": f"message {i}",
            "timestamp": int(time.time()) - 60 + i,
        }
        for i in range(5)
    ]
    resp = await sim.post(
        "/_sim/batch", json={"phone_number_id": PNID, "messages": specs, "split_entries": True}
    )
    assert resp.json()["status"] == 200
    assert await count(server, InboundEvent) == 5

    async def all_stored() -> bool:
        return await count(server, Message) == 5

    await eventually(all_stored)
    convs = (await api.get("/api/v1/conversations")).json()["data"]
    assert len(convs) == 3
    bodies = []
    for c in convs:
        bodies += [m["body"] for m in await thread(api, c["id"])]
    bodies.sort()
    assert bodies == [f"message {i}" for i in range(5)]

    # Now two replies, then one batched webhook carrying statuses for both.
    await sim.post("/_sim/config", json={"auto_statuses": []})
    reply_ids = []
    for c in convs[:2]:
        r = await api.post(f"/api/v1/conversations/{c['id']}/messages", json={"text": "thanks!"})
        reply_ids.append(r.json()["id"])

    async def both_sent() -> list:
        sent = (await sim.get("/_sim/sent", params={"phone_number_id": PNID})).json()
        return sent if len(sent) == 2 else []

    sent = await eventually(both_sent)
    wamids = [s["response"]["body"]["messages"][0]["id"] for s in sent]
    statuses = [
        {"id": w, "status": st, "recipient_id": s["body"]["to"].lstrip("+")}
        for w, s in zip(wamids, sent, strict=True)
        for st in ("delivered", "read")
    ]
    resp = await sim.post("/_sim/batch", json={"phone_number_id": PNID, "statuses": statuses})
    assert resp.json()["status"] == 200

    async def both_read() -> bool:
        async with server.runtime.db.read() as s:
            rows = (await s.scalars(select(Message.status).where(Message.id.in_(reply_ids)))).all()
        return sorted(rows) == ["read", "read"]

    await eventually(both_read)
    await sim.aclose()


def test_signature_is_over_raw_bytes() -> None:
    """Guard for the simulator/adapter pair: the header is HMAC-SHA256 of the exact bytes."""
    from tidings.channels.base import WebhookRequest
    from tidings.channels.whatsapp import WhatsAppAdapter
    from tidings.channels.whatsapp.config import WhatsAppConfig

    body = b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[]}]}'
    sig = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    config = WhatsAppConfig(
        phone_number_id=PNID, access_token=TOKEN, app_secret=APP_SECRET, verify_token="v"
    )
    WhatsAppAdapter().verify(
        config, WebhookRequest("POST", "http://x", {"x-hub-signature-256": sig}, {}, body)
    )


async def test_replies_take_a_token_from_the_recipient_pair_bucket(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """WhatsApp limits each (business number, customer) pair
    (docs/channels/whatsapp.md#throughput-and-pair-limits, error 131056): the delivery worker
    takes a token from that pair's bucket as well as the channel's."""
    from tidings.ratelimit import MemoryRateLimiter

    channel = await whatsapp_channel(server, api)
    sim = factories.simulator(server, "whatsapp")
    await sim.post(
        "/_sim/inbound", json={"phone_number_id": PNID, "from": "16505550000", "text": "hi"}
    )

    async def conversation() -> list:
        return (await api.get("/api/v1/conversations")).json()["data"]

    conv = (await eventually(conversation))[0]
    for text in ("one", "two", "three"):
        assert (
            await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": text})
        ).status_code == 201

    async def sent() -> bool:
        return len((await sim.get("/_sim/sent", params={"phone_number_id": PNID})).json()) == 3

    await eventually(sent)
    limiter = server.runtime.rate_limiter
    assert isinstance(limiter, MemoryRateLimiter)
    tokens, _at, _rate, _burst = limiter._buckets[f"recipient:{channel['id']}:16505550000"]
    assert 42.0 <= tokens < 43.5  # 45 - 3, plus a refill of 1/6 token per second meanwhile
    await sim.aclose()


async def test_a_burst_of_replies_never_exceeds_the_number_tier_in_any_second(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """The number's tier (80 msg/s by default, 130429 above;
    docs/channels/whatsapp.md#throughput-and-pair-limits) holds in every
    one-second window, not on average: 24 replies queued at once to a tier-6 number reach the
    simulator (which enforces 6 per sliding second) with one attempt each, bar at most two
    arrival-jitter retries. A token bucket with a second's burst let 12 into the first second."""
    resp = await api.post(
        "/api/v1/channels",
        json={
            "kind": "whatsapp",
            "name": "WhatsApp tier 6",
            "config": {
                "phone_number_id": PNID,
                "access_token": TOKEN,
                "app_secret": APP_SECRET,
                "verify_token": "verify-me",
                "api_base_url": f"{server.url}/sandbox/whatsapp",
                "messages_per_second": 6,
            },
        },
    )
    assert resp.status_code == 201, resp.text
    sim = factories.simulator(server, "whatsapp")
    assert (await sim.post("/_sim/config", json={"throughput_per_second": 6})).status_code == 200
    n = 24
    for i in range(n):
        r = await sim.post(
            "/_sim/inbound", json={"phone_number_id": PNID, "from": f"1650555{i:04d}", "text": "hi"}
        )
        assert r.status_code == 200, r.text

    async def conversations() -> list | None:
        data = (await api.get("/api/v1/conversations", params={"limit": 100})).json()["data"]
        return data if len(data) == n else None

    convs = await eventually(conversations, timeout=30)
    for conv in convs:
        reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "ok"})
        assert reply.status_code == 201

    async def all_sent() -> bool:
        async with server.runtime.db.read() as s:
            rows = (await s.execute(select(Delivery.state, Delivery.attempts))).all()
        return len(rows) == n and all(state == "done" for state, _ in rows)

    await eventually(all_sent, timeout=30)
    async with server.runtime.db.read() as s:
        attempts = (await s.scalars(select(Delivery.attempts))).all()
    # The window holds the tier at departure; the simulator counts arrivals, and on a loaded
    # machine a send may reach it a few milliseconds late and be refused once (130429, then
    # retried): seen up to twice when the suite shares two cores with other work. The bucket
    # let twelve into the first second: six refused.
    assert sum(a - 1 for a in attempts) <= 2, attempts
    await sim.aclose()
