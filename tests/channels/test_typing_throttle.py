"""The typing indicator towards the customer is throttled on the server: however many times
composers say "replying" while typing, a conversation gets at most one every 5 s; a heartbeat
over an idle draft (`typing: false`) shows nothing (issue #16, item 12)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests import factories
from tests.conftest import Owner, Server, eventually

TOKEN = "7000000004:AAH-throttled_typing_token"
CHAT = 747474


async def test_typing_is_sent_once_per_five_seconds_and_not_for_an_idle_draft(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await factories.telegram_channel(api, server, bot_token=TOKEN, secret_token="throttle_secret")
    async with factories.simulator(server, "telegram") as sim:
        said = await sim.post("/_sim/inbound", json={"token": TOKEN, "chat_id": CHAT, "text": "hi"})
        assert said.status_code == 200, said.text

        async def conv() -> dict[str, Any] | None:
            data = (await api.get("/api/v1/conversations")).json()["data"]
            return dict(data[0]) if data else None

        c = await eventually(conv)

        async def typing_calls() -> list[dict[str, Any]]:
            calls = (await sim.get("/_sim/sent", params={"token": TOKEN})).json()
            return [x for x in calls if x["method"] == "sendChatAction"]

        presence = f"/api/v1/ui/conversations/{c['id']}/presence"
        idle = await api.post(presence, json={"state": "replying", "typing": False})
        assert idle.status_code == 200, idle.text
        await asyncio.sleep(0.5)
        assert await typing_calls() == []

        for _ in range(3):
            typing = await api.post(presence, json={"state": "replying", "typing": True})
            assert typing.status_code == 200, typing.text
        await eventually(typing_calls)
        await asyncio.sleep(0.5)
        assert len(await typing_calls()) == 1
