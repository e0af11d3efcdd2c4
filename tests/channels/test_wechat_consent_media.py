"""WeChat through its simulator: an unfollow (unsubscribe event) records an opt-out for that
contact on WeChat and replies are refused before they are queued; following again opts back
in. Inbound image/voice/video keep WeChat's MediaId on the attachment so the media can be
fetched later (within WeChat's 3 days)."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import Owner, Server, eventually
from tests.factories import simulator, wechat_channel
from tidings.domain.enums import InboundState
from tidings.storage.models import Attachment, Consent, InboundEvent

APP_ID = "wxconsent0001"
CHANNEL = {"app_id": APP_ID, "app_secret": "secret-consent", "token": "tokenconsent"}


@pytest.fixture
async def sim(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with simulator(server, "wechat") as c:
        yield c


async def push(sim: httpx.AsyncClient, **body: Any) -> None:
    resp = await sim.post("/_sim/inbound", json={"app_id": APP_ID, "user": "carol", **body})
    assert resp.status_code == 200, resp.text
    assert resp.json()["delivered"] is True, resp.json()


async def processed(server: Server, n: int) -> None:
    async def done() -> bool:
        async with server.runtime.db.read() as s:
            states = (await s.scalars(select(InboundEvent.state))).all()
        return len(states) == n and all(st == InboundState.DONE for st in states)

    await eventually(done, timeout=20)


async def consent_rows(server: Server) -> list[tuple[str, str, str]]:
    async with server.runtime.db.read() as s:
        rows = (
            await s.execute(select(Consent.channel_kind, Consent.purpose, Consent.status))
        ).all()
    return sorted((str(k), str(p), str(st)) for k, p, st in rows)


async def test_unfollow_opts_out_and_follow_opts_back_in(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    await wechat_channel(api, server, **CHANNEL)
    # WeChat dedupes events by sender + CreateTime (+ event): a real follow, unfollow and
    # follow again are seconds apart, so each push gets its own second here.
    t0 = int(time.time()) - 60
    await push(sim, event="subscribe", create_time=t0)
    await push(sim, text="你好", create_time=t0 + 1)
    await processed(server, 2)
    # A first follow records no consent change.
    assert await consent_rows(server) == []
    conv = (await api.get("/api/v1/conversations")).json()["data"][0]

    await push(sim, event="unsubscribe", create_time=t0 + 2)
    await processed(server, 3)
    assert await consent_rows(server) == [
        ("wechat", "marketing", "opted_out"),
        ("wechat", "service", "opted_out"),
    ]
    refused = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Are you still there?"}
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "opted_out"
    assert (await sim.get("/_sim/sent", params={"app_id": APP_ID})).json() == []

    await push(sim, event="subscribe", create_time=t0 + 3)
    await processed(server, 4)
    assert {row[2] for row in await consent_rows(server)} == {"opted_in"}
    msgs = (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["data"]
    notes = [m["body"] for m in msgs if m["kind"] == "system" and m["extra"].get("consent")]
    assert len(notes) == 2  # one opt-out, one opt-in; the first follow added none
    reply = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Welcome back"}
    )
    assert reply.status_code == 201, reply.text

    async def delivered() -> list[str]:
        sent = (await sim.get("/_sim/sent", params={"app_id": APP_ID})).json()
        return [s.get("content") for s in sent]

    assert await eventually(delivered) == ["Welcome back"]


async def test_inbound_media_keeps_the_media_id(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    await wechat_channel(api, server, **CHANNEL)
    data = base64.b64encode(b"\x00\x01media-bytes").decode()
    await push(sim, type="image", image_base64=data, content_type="image/png")
    await push(sim, type="voice", data_base64=data, format="amr", text="语音识别")
    await push(sim, type="video", data_base64=data)
    await processed(server, 3)

    media = (await sim.get("/_sim/media", params={"app_id": APP_ID})).json()
    by_type = {m["type"]: m["media_id"] for m in media if m["type"] != "thumb"}
    async with server.runtime.db.read() as s:
        rows = (await s.execute(select(Attachment.kind, Attachment.provider_media_id))).all()
        total = await s.scalar(select(func.count()).select_from(Attachment))
    assert total == 3
    assert sorted((str(k), str(m)) for k, m in rows) == sorted(
        [("image", by_type["image"]), ("audio", by_type["voice"]), ("video", by_type["video"])]
    )
    conv = (await api.get("/api/v1/conversations")).json()["data"][0]
    msgs = (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["data"]
    assert [(m["kind"], [a["kind"] for a in m["attachments"]]) for m in msgs] == [
        ("media", ["image"]),
        ("media", ["audio"]),
        ("media", ["video"]),
    ]
