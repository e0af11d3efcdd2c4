"""Telegram through its simulator: an agent starting a reply shows "typing…" to the customer
(`sendChatAction` typing); reading the conversation sends nothing (bots get no read receipts)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Owner, Server, eventually, sandbox_headers

TOKEN = "7000000002:AAH-typing_token_for_the_tests"
CHAT = 626262


async def test_replying_shows_typing_and_reading_sends_nothing(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    resp = await api.post(
        "/api/v1/channels",
        json={
            "kind": "telegram",
            "name": "Bot",
            "config": {
                "bot_token": TOKEN,
                "secret_token": "typing_secret",
                "api_base_url": f"{server.url}/sandbox/telegram",
            },
        },
    )
    assert resp.status_code == 201, resp.text
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/telegram", timeout=20
    ) as sim:
        sent = await sim.post(
            "/_sim/inbound", json={"token": TOKEN, "chat_id": CHAT, "text": "anyone there?"}
        )
        assert sent.status_code == 200, sent.text

        async def conv() -> dict[str, Any] | None:
            data = (await api.get("/api/v1/conversations")).json()["data"]
            return dict(data[0]) if data else None

        c = await eventually(conv)

        async def actions() -> list[dict[str, Any]]:
            calls = (await sim.get("/_sim/sent", params={"token": TOKEN})).json()
            return [x for x in calls if x["method"] == "sendChatAction"]

        assert (await api.post(f"/api/v1/ui/conversations/{c['id']}/read")).status_code == 200
        replying = await api.post(
            f"/api/v1/ui/conversations/{c['id']}/presence", json={"state": "replying"}
        )
        assert replying.status_code == 200, replying.text
        [typing] = await eventually(actions)
        assert typing["params"] == {"chat_id": CHAT, "action": "typing"}
        assert typing["ok"] is True
        # Only the typing call: reading produced no Bot API call.
        calls = (await sim.get("/_sim/sent", params={"token": TOKEN})).json()
        assert [x["method"] for x in calls] == ["setWebhook", "sendChatAction"]
