"""Contract-suite driver for LINE (`drivers.py` adds it to DRIVERS), through the LINE
simulator mounted at /sandbox/line."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import orjson

from tests.conftest import Server
from tests.contract.more_drivers import _get, _post
from tidings.channels.line.webhook import signature


class LineDriver:
    kind: ClassVar[str] = "line"
    # LINE reports neither delivery nor reading of a bot's messages.
    final_status: ClassVar[str] = "sent"
    adapted: ClassVar[dict[str, str]] = {
        "test_reply_reaches_the_simulator_and_statuses_come_back": "LINE has no delivery or "
        "read receipts for bots, so a reply ends at sent",
        "test_duplicate_changes_nothing": "the same event again is LINE's redelivery: the same "
        "webhookEventId with deliveryContext.isRedelivery true",
        "test_profile_names_reach_the_contact": "webhooks carry no names: the profiles worker "
        "asks GET /v2/bot/profile/{userId}",
    }
    token = "contract-line-channel-access-token"
    secret = "8c570fa6dd201bb328f1c1eac23a96d8"
    user = "U4af4980629e4c6a3b2f1d0c9e8b7a6f5"
    events: ClassVar[dict[str, str]] = {}

    def config(self, server: Server) -> dict[str, Any]:
        base = f"{server.url}/sandbox/line"
        return {
            "channel_secret": self.secret,
            "channel_access_token": self.token,
            "api_base_url": base,
            "data_api_base_url": base,
        }

    async def customer_text(self, server: Server, text: str, message_id: str | None = None) -> str:
        if message_id:
            body: dict[str, Any] = {"token": self.token, "redeliver": self.events[message_id]}
            await _post(server, self.kind, "/_sim/inbound", body)
            return message_id
        body = {"token": self.token, "user_id": self.user, "text": text}
        result = await _post(server, self.kind, "/_sim/inbound", body)
        self.events[result["message_id"]] = result["webhookEventId"]
        return str(result["message_id"])

    async def customer_unknown(self, server: Server) -> None:
        body = {"token": self.token, "user_id": self.user, "other": {"type": "hologram"}}
        await _post(server, self.kind, "/_sim/inbound", body)

    async def customer_named(self, server: Server, name: str, text: str) -> None:
        # The name is only in the simulator's profile endpoint, as with LINE.
        body = {"token": self.token, "user_id": self.user, "name": name, "text": text}
        await _post(server, self.kind, "/_sim/inbound", body)

    def forged_request(self) -> tuple[bytes, dict[str, str]]:
        event = {
            "type": "message",
            "mode": "active",
            "timestamp": int(time.time() * 1000),
            "webhookEventId": "01FZ74A0TDDPYRVKNK77XKC3ZR",
            "deliveryContext": {"isRedelivery": False},
            "source": {"type": "user", "userId": self.user},
            "replyToken": "757913772c4646b784d4b7ce46d12671",
            "message": {"type": "text", "id": "444573844083572737", "text": "forged"},
        }
        body = orjson.dumps({"destination": "U8e742f61d673b39c7fff3cecb7536ef0", "events": [event]})
        return body, {"x-line-signature": signature("not-the-channel-secret", body)}

    def forged_query(self) -> dict[str, str]:
        return {}

    async def received(self, server: Server) -> list[str]:
        calls = await _get(server, self.kind, "/_sim/sent", {"token": self.token})
        return [
            m["text"]
            for c in calls
            if c["endpoint"] in ("reply", "push") and c["status"] == 200
            for m in c["messages"]
            if m["type"] == "text"
        ]
