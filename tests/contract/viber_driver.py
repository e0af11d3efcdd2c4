"""The contract-suite driver for Viber (kind `viber`), played through the sandbox's Viber
simulator over real HTTP (tidings/simulators/viber.py)."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import httpx
import orjson

from tests import factories
from tests.conftest import Server


def _client(server: Server) -> httpx.AsyncClient:
    return factories.simulator(server, "viber")


async def _post(server: Server, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with _client(server) as sim:
        resp = await sim.post(path, json=body)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


class ViberDriver:
    kind: ClassVar[str] = "viber"
    # The simulated phone reports `delivered` after each accepted send.
    final_status: ClassVar[str] = "delivered"
    adapted: ClassVar[dict[str, str]] = {
        "test_duplicate_changes_nothing": "Viber has no redelivery flag: the "
        "same callback again (same event and message_token) is what a retry looks like",
        "test_unknown_type_is_a_visible_unsupported_message": "an unknown `message.type` in a signed "
        "message callback",
    }
    token = "4a7c9e0f2b3d5e6f-7a8b9c0d1e2f3a4b-contractsuite0001"
    user = "Contract Customer"

    def config(self, server: Server) -> dict[str, Any]:
        return {
            "auth_token": self.token,
            "api_base_url": f"{server.url}/sandbox/viber",
            "sender_name": "Contract Suite",
        }

    async def customer_text(self, server: Server, text: str, message_id: str | None = None) -> str:
        if message_id:
            body: dict[str, Any] = {"token": self.token, "redeliver": message_id}
        else:
            body = {"token": self.token, "user": self.user, "name": "Ana", "text": text}
        result = await _post(server, "/_sim/inbound", body)
        return str(result["message_token"])

    async def customer_unknown(self, server: Server) -> None:
        body = {"token": self.token, "user": self.user, "other": {"type": "hologram"}}
        await _post(server, "/_sim/inbound", body)

    async def customer_named(self, server: Server, name: str, text: str) -> None:
        # The name travels in the callback's `sender.name` (and get_user_details has it too).
        body = {"token": self.token, "user": self.user, "name": name, "text": text}
        await _post(server, "/_sim/inbound", body)

    def forged_request(self) -> tuple[bytes, dict[str, str]]:
        body = orjson.dumps(
            {
                "event": "message",
                "timestamp": int(time.time() * 1000),
                "message_token": 5466297578174182639,
                "sender": {"id": "3SQNc4FPUQmysaM/AQEhXg==", "name": "X"},
                "message": {"type": "text", "text": "forged"},
            }
        )
        return body, {"X-Viber-Content-Signature": "0" * 64, "Content-Type": "application/json"}

    def forged_query(self) -> dict[str, str]:
        return {}

    async def received(self, server: Server) -> list[str]:
        async with _client(server) as sim:
            resp = await sim.get("/_sim/sent", params={"token": self.token})
        assert resp.status_code == 200, resp.text
        return [
            c["body"]["text"]
            for c in resp.json()
            if c["method"] == "send_message"
            and c["answer"]["status"] == 0
            and c["body"].get("type") == "text"
        ]
