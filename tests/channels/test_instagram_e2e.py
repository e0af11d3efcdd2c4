"""Instagram end to end over real HTTP with the sandbox simulator, in both API flavours:
Instagram Login (IG account id, IG user token, optional Instagram app secret signing) and via
a Facebook Page (sends to the Page id). Inbound kinds of
docs/channels/instagram.md#inbound-events, replies, echoes, `seen` receipts, the 1000-byte text
limit and the window."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from tests.conftest import Owner, Server, eventually
from tests.factories import instagram_channel, simulator
from tidings.channels.meta_common import sign
from tidings.storage.models import InboundEvent

IG_ID = "17841400000000042"
PAGE_ID = "104857600000077"
IGSID = "5566778899001122"


def channel_config(flavour: str) -> dict[str, Any]:
    """What the test signs with; the Facebook-login flavour also names its Page."""
    config: dict[str, Any] = {
        "flavour": flavour,
        "instagram_account_id": IG_ID,
        "access_token": "IGQV-user-token",
        "app_secret": "meta-app-secret",
        "verify_token": "verify-ig",
    }
    if flavour == "facebook_login":
        config["page_id"] = PAGE_ID
    return config


async def inbound(sim: httpx.AsyncClient, **spec: Any) -> dict[str, Any]:
    spec.setdefault("account_id", IG_ID)
    spec.setdefault("from", IGSID)
    resp = await sim.post("/_sim/inbound", json=spec)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == 200, resp.json()
    return resp.json()  # type: ignore[no-any-return]


async def conversation(api: httpx.AsyncClient) -> dict[str, Any]:
    async def convs() -> list[Any]:
        return (await api.get("/api/v1/conversations")).json()["data"]

    [conv] = await eventually(convs)
    return conv  # type: ignore[no-any-return]


async def thread(api: httpx.AsyncClient, conv_id: int, n: int = 1) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        data = (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]
        return data if len(data) >= n else None

    return await eventually(check)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("flavour", "node"), [("instagram_login", IG_ID), ("facebook_login", PAGE_ID)]
)
async def test_round_trip_in_both_flavours(
    server: Server, owner: Owner, api: httpx.AsyncClient, flavour: str, node: str
) -> None:
    await instagram_channel(api, server, **channel_config(flavour))
    sim = simulator(server, "instagram")
    first = await inbound(sim, text="Do you ship to Lisbon?")
    conv = await conversation(api)
    [msg] = await thread(api, conv["id"])
    assert (msg["body"], msg["provider_message_id"]) == ("Do you ship to Lisbon?", first["id"])

    reply = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Yes, in 3 days."}
    )
    assert reply.status_code == 201, reply.text

    async def sent() -> list[Any]:
        return (await sim.get("/_sim/sent", params={"account_id": IG_ID})).json()

    [request] = await eventually(sent)
    assert request["path"] == f"/sandbox/instagram/v25.0/{node}/messages"
    assert request["body"]["recipient"] == {"id": IGSID}
    assert request["body"]["message"]["text"] == "Yes, in 3 days."

    async def seen() -> dict[str, Any] | None:
        m = next(m for m in await thread(api, conv["id"], 2) if m["id"] == reply.json()["id"])
        return m if m["status"] == "read" else None

    await eventually(seen)
    await sim.post("/_sim/flush", json={"timeout": 5})
    assert len(await thread(api, conv["id"], 2)) == 2  # the echo is no second message
    await sim.aclose()


async def test_instagram_kinds_deletes_and_text_limit(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await instagram_channel(api, server, **channel_config("instagram_login"))
    sim = simulator(server, "instagram")
    hello = await inbound(sim, text="hello")
    conv = await conversation(api)
    await thread(api, conv["id"])
    await inbound(
        sim,
        type="attachments",
        attachments=[
            {
                "type": "story_mention",
                "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1"},
            }
        ],
    )
    await inbound(
        sim,
        type="attachments",
        attachments=[{"type": "share", "payload": {"url": "https://www.instagram.com/p/abc/"}}],
    )
    await inbound(sim, type="reaction", mid=hello["id"], reaction="love")
    await inbound(sim, type="unsupported")
    gone = await inbound(sim, text="oops, wrong chat")
    msgs = await thread(api, conv["id"], 6)
    assert [(m["kind"], m["body"]) for m in msgs] == [
        ("text", "hello"),
        ("media", "story mention"),
        ("media", "share"),
        ("reaction", "\u2764\ufe0f"),
        ("unsupported", None),
        ("text", "oops, wrong chat"),
    ]
    assert msgs[1]["extra"]["shares"][0]["type"] == "story_mention"

    await inbound(sim, type="delete", mid=gone["id"])

    async def deleted() -> dict[str, Any] | None:
        last = (await thread(api, conv["id"], 6))[-1]
        return last if last["body"] is None else None

    last = await eventually(deleted)
    assert "deleted_at" in last["extra"]

    # 1000 bytes of UTF-8, not characters: 400 "é" are 800 bytes, 600 are 1200.
    ok = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "é" * 400})
    assert ok.status_code == 201
    refused = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "é" * 600}
    )
    assert refused.status_code == 422
    assert "bytes" in refused.json()["error"]["message"]
    await sim.aclose()


async def test_instagram_app_secret_signature(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await instagram_channel(
        api, server, **channel_config("instagram_login"), instagram_app_secret="ig-app-secret"
    )
    body = orjson.dumps(
        {
            "object": "instagram",
            "entry": [
                {
                    "id": IG_ID,
                    "time": 1750000000000,
                    "messaging": [
                        {
                            "sender": {"id": IGSID},
                            "recipient": {"id": IG_ID},
                            "timestamp": 1750000000000,
                            "message": {"mid": "aWdfZAGx1", "text": "signed by the IG secret"},
                        }
                    ],
                }
            ],
        }
    )
    async with httpx.AsyncClient() as client:
        good = await client.post(
            channel["webhook_url"],
            content=body,
            headers={"X-Hub-Signature-256": sign("ig-app-secret", body)},
        )
        also = await client.post(
            channel["webhook_url"],
            content=body,
            headers={"X-Hub-Signature-256": sign("meta-app-secret", body)},
        )
        bad = await client.post(
            channel["webhook_url"],
            content=body,
            headers={"X-Hub-Signature-256": sign("nope", body)},
        )
    assert (good.status_code, also.status_code, bad.status_code) == (200, 200, 401)
    async with server.runtime.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(InboundEvent)) == 1
