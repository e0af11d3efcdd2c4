"""RBM through its simulator: every send starts with a capability check (a phone without RCS
is refused with a clear reason, and the inbox's SMS fallback takes over); an agent reading the
conversation sends READ for the customer's latest message; an agent replying shows IS_TYPING;
the customer's UNSUBSCRIBE / SUBSCRIBE events reach the consent registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.factories import rbm_channel, simulator

AGENT = "events-agent@rbm.goog"
TOKEN = "SJENCPGJESMGUFPY"
PHONE = "+14155550123"
CHANNEL = {"agent_id": AGENT, "webhook_client_token": TOKEN, "access_token": "ya29.events"}


@pytest.fixture
async def sim(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with simulator(server, "rbm") as c:
        yield c


async def customer_writes(sim: httpx.AsyncClient, text: str) -> str:
    resp = await sim.post("/_sim/inbound", json={"agent_id": AGENT, "from": PHONE, "text": text})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["messageId"])


async def conversation(api: httpx.AsyncClient, messages: int) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        convs = (await api.get("/api/v1/conversations")).json()["data"]
        if len(convs) != 1:
            return None
        msgs = (await api.get(f"/api/v1/conversations/{convs[0]['id']}/messages")).json()
        return dict(convs[0]) if len(msgs["data"]) >= messages else None

    found: dict[str, Any] = await eventually(ready, timeout=20)
    return found


async def calls(sim: httpx.AsyncClient, method: str) -> list[dict[str, Any]]:
    got = (await sim.get("/_sim/sent", params={"agent_id": AGENT})).json()
    return [c for c in got if c.get("method") == method]


async def test_phone_without_rcs_is_refused_with_a_reason_and_sms_takes_over(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    await rbm_channel(api, server, **CHANNEL)
    twilio = await api.post(
        "/api/v1/channels",
        json={
            "kind": "twilio",
            "name": "SMS",
            "config": {
                "account_sid": "AC" + "e0" * 16,
                "auth_token": "events-auth-token",
                "from_number": "+14155550100",
                "api_base_url": f"{server.url}/sandbox/twilio",
            },
        },
    )
    assert twilio.status_code == 201, twilio.text
    plan = await api.put(
        f"/api/v1/inboxes/{owner.inbox_id}/fallback",
        json={"to_channel_id": twilio.json()["id"], "on_failed": True},
    )
    assert plan.status_code == 200, plan.text

    await customer_writes(sim, "Hi over RCS")
    conv = await conversation(api, 1)
    # The customer's new phone has no RCS.
    off = await sim.put(f"/_sim/phones/{PHONE}", json={"rcs_enabled": False})
    assert off.status_code == 200, off.text

    reply = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Your order shipped"}
    )
    assert reply.status_code == 201, reply.text

    async def failed() -> dict[str, Any] | None:
        msgs = (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["data"]
        ours = next(m for m in msgs if m["id"] == reply.json()["id"])
        return ours if ours["status"] == "failed" else None

    ours = await eventually(failed, timeout=20)
    assert ours["error_code"] == "not_rcs_capable"
    assert "cannot receive RCS" in ours["error_reason"]
    assert len(await calls(sim, "capabilities")) == 1
    assert await calls(sim, "agentMessages") == []

    async def sms_sent() -> list[str]:
        async with httpx.AsyncClient(
            headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/twilio"
        ) as tw:
            sent = (await tw.get("/_sim/sent")).json()
        return [dict(s["params"]).get("Body", "") for s in sent]

    assert await eventually(sms_sent, timeout=30) == ["Your order shipped"]
    msgs = (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["data"]
    follow_up = [m for m in msgs if m["extra"].get("fallback_of") == ours["id"]]
    assert len(follow_up) == 1


async def test_capable_phone_is_checked_once_then_messages_flow(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    await rbm_channel(api, server, **CHANNEL)
    await customer_writes(sim, "Hello")
    conv = await conversation(api, 1)
    for text in ("One", "Two"):
        resp = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": text})
        assert resp.status_code == 201, resp.text

    async def both_sent() -> list[str] | None:
        got = [c["body"]["contentMessage"]["text"] for c in await calls(sim, "agentMessages")]
        return got if len(got) == 2 else None

    assert await eventually(both_sent, timeout=20) == ["One", "Two"]
    # A capable number is remembered for a while: not one extra call per reply.
    assert len(await calls(sim, "capabilities")) <= 1


async def test_reading_sends_read_and_replying_sends_typing(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    await rbm_channel(api, server, **CHANNEL)
    await customer_writes(sim, "first")
    latest = await customer_writes(sim, "second")
    conv = await conversation(api, 2)

    async def both_unread() -> bool:
        got = (await api.get("/api/v1/conversations")).json()["data"]
        return bool(got[0]["unread_count"] == 2)

    await eventually(both_unread)

    read = await api.post(f"/api/v1/ui/conversations/{conv['id']}/read")
    assert read.status_code == 200, read.text

    async def read_events() -> list[dict[str, Any]]:
        return [
            c["body"] for c in await calls(sim, "agentEvents") if c["body"]["eventType"] == "READ"
        ]

    assert await eventually(read_events) == [{"eventType": "READ", "messageId": latest}]
    # Reading again with nothing unread sends nothing more.
    assert (await api.post(f"/api/v1/ui/conversations/{conv['id']}/read")).status_code == 200

    typing = await api.post(
        f"/api/v1/ui/conversations/{conv['id']}/presence", json={"state": "replying"}
    )
    assert typing.status_code == 200, typing.text

    async def typing_events() -> list[dict[str, Any]]:
        return [
            c["body"]
            for c in await calls(sim, "agentEvents")
            if c["body"]["eventType"] == "IS_TYPING"
        ]

    assert await eventually(typing_events) == [{"eventType": "IS_TYPING"}]
    # Viewing is not typing.
    await api.post(f"/api/v1/ui/conversations/{conv['id']}/presence", json={"state": "viewing"})
    assert len(await read_events()) == 1
    assert len(await typing_events()) == 1


async def test_unsubscribe_and_subscribe_events_change_consent(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    await rbm_channel(api, server, **CHANNEL)
    await customer_writes(sim, "hello")
    conv = await conversation(api, 1)
    stop = await sim.post(
        "/_sim/event", json={"agent_id": AGENT, "from": PHONE, "event_type": "UNSUBSCRIBE"}
    )
    assert stop.status_code == 200, stop.text
    await conversation(api, 3)  # the event's line and the opt-out note

    refused = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "x"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "opted_out"

    await sim.post(
        "/_sim/event", json={"agent_id": AGENT, "from": PHONE, "event_type": "SUBSCRIBE"}
    )
    await conversation(api, 5)
    allowed = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "y"})
    assert allowed.status_code == 201, allowed.text
