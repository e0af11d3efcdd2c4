"""Telegram through its simulator: an agent starting a reply shows "typing…" to the customer
(`sendChatAction` typing); reading the conversation sends nothing (bots get no read receipts)."""

from __future__ import annotations

from typing import Any

import httpx

from tests import factories
from tests.conftest import Owner, Server, eventually

TOKEN = "7000000002:AAH-typing_token_for_the_tests"
CHAT = 626262


async def test_replying_shows_typing_and_reading_sends_nothing(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await factories.telegram_channel(api, server, bot_token=TOKEN, secret_token="typing_secret")
    async with factories.simulator(server, "telegram") as sim:
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


async def test_typing_goes_where_the_reply_goes_after_a_merge(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """A merged contact with two Telegram chats: a reply goes to the latest one, and so must
    the typing indicator (it went to the oldest)."""
    first, second = 636363, 646464
    await factories.telegram_channel(api, server, bot_token=TOKEN, secret_token="typing_secret")
    async with factories.simulator(server, "telegram") as sim:
        for chat in (first, second):
            sent = await sim.post(
                "/_sim/inbound", json={"token": TOKEN, "chat_id": chat, "text": f"hi {chat}"}
            )
            assert sent.status_code == 200, sent.text

        async def two() -> list[dict[str, Any]] | None:
            data = (await api.get("/api/v1/conversations")).json()["data"]
            return data if len(data) == 2 else None

        convs = sorted(await eventually(two), key=lambda c: c["id"])
        keep, merged = convs[0]["contact_id"], convs[1]["contact_id"]
        done = await api.post(f"/api/v1/ui/contacts/{keep}/merge", json={"merge_id": merged})
        assert done.status_code == 200, done.text

        async def calls(method: str) -> list[dict[str, Any]]:
            got = (await sim.get("/_sim/sent", params={"token": TOKEN})).json()
            return [x for x in got if x["method"] == method]

        c = convs[0]["id"]
        replying = await api.post(
            f"/api/v1/ui/conversations/{c}/presence", json={"state": "replying"}
        )
        assert replying.status_code == 200, replying.text
        reply = await api.post(f"/api/v1/conversations/{c}/messages", json={"text": "Hello"})
        assert reply.status_code == 201, reply.text
        [typing] = await eventually(lambda: calls("sendChatAction"))
        [message] = await eventually(lambda: calls("sendMessage"))
        assert message["params"]["chat_id"] == second  # the latest identity
        assert typing["params"]["chat_id"] == message["params"]["chat_id"]
