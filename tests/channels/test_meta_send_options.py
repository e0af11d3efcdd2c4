"""`GET /api/v1/conversations/{id}/channels`: per channel, the window and what may be sent
now (text, a HUMAN_AGENT-tagged reply, or a template), as the composer needs it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.channels.test_messenger_e2e import (
    CHANNEL,
    _age_window,
    inbound,
    only_conversation,
    simulator,
    wait_messages,
)
from tests.conftest import Owner, Server
from tests.factories import messenger_channel


async def options(api: httpx.AsyncClient, conv_id: int) -> dict[str, dict[str, Any]]:
    resp = await api.get(f"/api/v1/conversations/{conv_id}/channels")
    assert resp.status_code == 200, resp.text
    return {c["kind"]: c for c in resp.json()}


async def test_window_and_send_options(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await messenger_channel(api, server, **CHANNEL, human_agent=True)
    wa = await api.post(
        "/api/v1/channels",
        json={
            "kind": "whatsapp",
            "name": "WhatsApp",
            "config": {
                "phone_number_id": "106540352242922",
                "access_token": "t",
                "app_secret": "s",
                "verify_token": "v",
                "api_base_url": f"{server.url}/sandbox/whatsapp",
            },
        },
    )
    assert wa.status_code == 201
    sim = simulator(server)
    await inbound(sim, text="hi")
    conv = await only_conversation(api)
    await wait_messages(api, conv["id"], 1)

    fresh = await options(api, conv["id"])
    assert set(fresh) == {"messenger", "whatsapp"}
    m = fresh["messenger"]
    assert (m["can_send_text"], m["needs_template"], m["window"]["open"]) == (True, False, True)
    assert m["window"]["tag"] is None and m["window"]["closes_at"]
    assert fresh["whatsapp"]["can_send_text"] is False
    assert fresh["whatsapp"]["code"] == "no_identity"

    await _age_window(server, conv["id"], hours=30)
    tagged = (await options(api, conv["id"]))["messenger"]
    assert (tagged["can_send_text"], tagged["window"]["tag"]) == (True, "HUMAN_AGENT")

    await _age_window(server, conv["id"], hours=8 * 24)
    closed = (await options(api, conv["id"]))["messenger"]
    assert (closed["can_send_text"], closed["code"], closed["needs_template"]) == (
        False,
        "window_closed",
        False,
    )
    missing = await api.get("/api/v1/conversations/999999/channels")
    assert missing.status_code == 404
    await sim.aclose()
