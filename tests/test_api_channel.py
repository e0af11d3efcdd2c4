"""The generic API channel end to end over real HTTP: a signed customer message in, an agent
reply out to the integrator's webhook (signed), delivery/read statuses back."""

from __future__ import annotations

import time

import httpx
import orjson

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.factories import api_channel
from tidings import signing

SECRET = "s3cret-for-the-api-channel"


async def test_customer_message_reply_and_statuses(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await api_channel(api, secret=SECRET, server=server, account="acme", name="Website")
    assert channel["webhook_url"] == f"{server.url}/webhooks/api/{channel['id']}"
    assert channel["config"]["secret"] == "••••"  # secrets never come back

    sim = httpx.AsyncClient(headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/api")
    resp = await sim.post(
        "/_sim/inbound",
        json={"account": "acme", "from": "cust-42", "name": "Ana", "text": "Hello <b>there</b>"},
    )
    assert resp.json()["status"] == 200

    async def conversations() -> list:
        return (await api.get("/api/v1/conversations")).json()["data"]

    convs = await eventually(conversations)
    assert len(convs) == 1
    conv = convs[0]
    assert conv["last_message_preview"] == "Hello <b>there</b>"
    messages = (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["data"]
    assert [(m["direction"], m["body"]) for m in messages] == [("in", "Hello <b>there</b>")]

    reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hi Ana!"})
    assert reply.status_code == 201, reply.text
    assert reply.json()["status"] == "queued"
    message_id = reply.json()["id"]

    async def received() -> list:
        return (await sim.get("/_sim/received", params={"account": "acme"})).json()

    got = await eventually(received)
    assert got == [
        {
            "id": message_id,
            "conversation_id": conv["id"],
            "to": "cust-42",
            "kind": "text",
            "text": "Hi Ana!",
            "reply_to": None,
        }
    ]

    async def read_status() -> str | None:
        msgs = (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["data"]
        status = next(m["status"] for m in msgs if m["id"] == message_id)
        return status if status == "read" else None

    assert await eventually(read_status) == "read"
    contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
    assert contact["name"] == "Ana"
    assert [(i["channel_kind"], i["address"]) for i in contact["identities"]] == [
        ("api", "cust-42")
    ]
    await sim.aclose()


async def test_bad_signature_is_rejected_and_nothing_stored(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await api_channel(api, secret=SECRET, server=server, account="acme", name="Website")
    body = orjson.dumps({"messages": [{"id": "m1", "from": {"id": "c1"}, "text": "hi"}]})
    url = f"{server.url}/webhooks/api/{channel['id']}"
    async with httpx.AsyncClient() as client:
        wrong = signing.sign_headers("not-the-secret-at-all", body)
        r1 = await client.post(url, content=body, headers=wrong)
        stale = signing.sign_headers(SECRET, body, now=time.time() - 3600)
        r2 = await client.post(url, content=body, headers=stale)
        r3 = await client.post(url, content=body)
    assert [r1.status_code, r2.status_code, r3.status_code] == [401, 401, 401]
    assert r1.json()["error"]["code"] == "bad_signature"
    async with server.runtime.db.read() as s:
        from sqlalchemy import func, select

        from tidings.storage.models import InboundEvent, Message

        assert await s.scalar(select(func.count()).select_from(InboundEvent)) == 0
        assert await s.scalar(select(func.count()).select_from(Message)) == 0
