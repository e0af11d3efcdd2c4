"""Legacy Google Business Messages (retired 2024-07-31) end to end over real HTTP against its
small simulator: handshake, signed inbound (raw-body HMAC), dedupe, reply, receipts, errors."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

from tests.conftest import Owner, Server, eventually
from tests.factories import gbm_channel, simulator
from tidings.channels import gbm
from tidings.channels import google_common as google
from tidings.channels.gbm import GONE, GbmAdapter
from tidings.channels.registry import get_adapter
from tidings.storage.models import InboundEvent, Message

AGENT = "legacy-agent-1"
CLIENT_TOKEN = "SJENCPGJESMGUFPY"
CHANNEL = {"agent_id": AGENT, "webhook_client_token": CLIENT_TOKEN, "access_token": "ya29.legacy"}


async def messages(api: httpx.AsyncClient, conv_id: int) -> list[dict[str, Any]]:
    return list((await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"])


def test_marked_retired() -> None:
    adapter = get_adapter("gbm")
    assert isinstance(adapter, GbmAdapter)
    assert adapter.label == "Google Business Messages (retired 2024-07-31)"
    assert "RETIRED" in (gbm.__doc__ or "")
    assert "2024-07-31" in (gbm.__doc__ or "")


async def test_handshake_inbound_dedupe_reply_receipts(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await gbm_channel(api, server, **CHANNEL)
    async with simulator(server, "gbm", timeout=10) as sim:
        assert (await sim.post("/_sim/verify", json={"agent_id": AGENT})).json() == {
            "status": 200,
            "verified": True,
        }
        r = await sim.post(
            "/_sim/inbound",
            json={
                "agent_id": AGENT,
                "conversation_id": "conv-1",
                "name": "Bea",
                "text": "still open?",
                "duplicates": 1,
            },
        )
        assert r.status_code == 200, r.text
        convs = await eventually(
            lambda: _data(api.get("/api/v1/conversations")),
        )
        conv = convs[0]
        msgs = await eventually(lambda: messages(api, conv["id"]))
        assert [(m["direction"], m["body"]) for m in msgs] == [("in", "still open?")]
        contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
        assert contact["name"] == "Bea"
        assert [(i["channel_kind"], i["address"]) for i in contact["identities"]] == [
            ("gbm", "conv-1")
        ]

        reply = await api.post(
            f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Yes!"}
        )
        reply_id = reply.json()["id"]

        async def read() -> bool:
            got = next(m for m in await messages(api, conv["id"]) if m["id"] == reply_id)
            return got["status"] == "read"

        await eventually(read)
        calls = (await sim.get("/_sim/sent", params={"agent_id": AGENT})).json()
    assert calls == [
        {
            "conversation_id": "conv-1",
            "body": {
                "messageId": f"tidings-{AGENT}-{reply_id}",
                "representative": {"representativeType": "HUMAN", "displayName": "Support"},
                "text": "Yes!",
            },
        }
    ]
    async with server.runtime.db.read() as s:
        # The duplicate push was dropped: one inbound message plus two receipt requests.
        assert await s.scalar(select(func.count()).select_from(InboundEvent)) == 3
        assert await s.scalar(select(func.count()).select_from(Message)) == 2


async def _data(resp: Any) -> list[dict[str, Any]]:
    return list((await resp).json()["data"])


async def test_bad_signature_rejected_and_gone_conversation_fails_plainly(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await gbm_channel(api, server, **CHANNEL)
    url = f"{server.url}/webhooks/gbm/{channel['id']}"
    body = orjson.dumps(
        {"conversationId": "c9", "requestId": "r9", "message": {"messageId": "m9", "text": "hi"}}
    )
    async with httpx.AsyncClient() as http:
        bad = await http.post(
            url, content=body, headers={"X-Goog-Signature": google.signature("wrong", body)}
        )
        none = await http.post(url, content=body)
        good = await http.post(
            url, content=body, headers={"X-Goog-Signature": google.signature(CLIENT_TOKEN, body)}
        )
    assert [bad.status_code, none.status_code, good.status_code] == [401, 401, 200]
    # c9 was never a simulator conversation: Google answers 404, shown as "retired/gone".
    convs = await eventually(lambda: _data(api.get("/api/v1/conversations")))
    reply = await api.post(
        f"/api/v1/conversations/{convs[0]['id']}/messages", json={"text": "hello"}
    )

    async def failed() -> dict[str, Any] | None:
        got = next(m for m in await messages(api, convs[0]["id"]) if m["id"] == reply.json()["id"])
        return got if got["status"] == "failed" else None

    msg = await eventually(failed)
    assert msg["error_reason"] == GONE
    async with server.runtime.db.read() as s:
        keys = (await s.scalars(select(InboundEvent.event_key))).all()
    assert keys == ["req:r9"]
