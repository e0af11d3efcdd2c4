"""Concatenated inbound SMS are joined into one message, in order, exactly once — even when
the parts arrive out of order or repeated: over SMPP (UDH parts as deliver_sm from the loopback
SMSC) and over Vonage (`concat-*` parameters on signed webhooks)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from tests import factories
from tests.conftest import Owner, Server, eventually
from tidings.domain.enums import InboundState
from tidings.storage.models import InboundEvent, Message, SmsPart

CUSTOMER = "+447911123456"
# 3 GSM-7 parts (153 + 153 + rest); each part's text is different so order shows.
LONG = "".join(f"[{n:03d}] part text " for n in range(1, 25))
assert 306 < len(LONG) <= 459


async def count(server: Server, model: Any, *where: Any) -> int:
    async with server.runtime.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def inbound_messages(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    convs = (await api.get("/api/v1/conversations")).json()["data"]
    out: list[dict[str, Any]] = []
    for conv in convs:
        out += (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["data"]
    return out


async def settled(server: Server, events: int) -> bool:
    """At least `events` stored and none waiting. (An SMSC that misses a deliver_sm_resp in
    time sends the part again on a new sequence number: more events, never fewer.)"""
    total = await count(server, InboundEvent)
    waiting = await count(server, InboundEvent, InboundEvent.state == InboundState.PENDING)
    return total >= events and waiting == 0


async def failed_events(server: Server) -> list[str | None]:
    async with server.runtime.db.read() as s:
        rows = await s.scalars(
            select(InboundEvent.error).where(InboundEvent.state == InboundState.FAILED)
        )
        return list(rows.all())


async def test_smpp_parts_out_of_order_and_repeated_make_one_message(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    sim = server.app.state.sandbox.smpp
    resp = await api.post(
        "/api/v1/channels",
        json={
            "kind": "smpp",
            "name": "SMPP",
            "config": {
                "host": "127.0.0.1",
                "port": sim.port,
                "system_id": "parts1",
                "password": "parts1pw",
                "source_addr": "14155550111",
                "enquire_link_seconds": 0.5,
                "reconnect_min_seconds": 0.1,
                "reconnect_max_seconds": 0.4,
            },
        },
    )
    assert resp.status_code == 201, resp.text
    async with factories.simulator(server, "smpp") as control:
        # Part 3 first, part 3 again while pending, then 1, then 2 (completes), then a late
        # repeat of 1 after the join. SMSCs resend on a fresh sequence number, so each
        # delivery is a distinct stored event: the joining must absorb the repeats itself.
        sent = await control.post(
            "/_sim/inbound",
            json={
                "system_id": "parts1",
                "from": CUSTOMER,
                "text": LONG,
                "part_order": [3, 3, 1, 2, 1],
            },
        )
        assert sent.status_code == 200, sent.text
        assert sent.json()["parts"] == 3

    await eventually(lambda: settled(server, 5), timeout=30)
    assert await failed_events(server) == []
    msgs = await inbound_messages(api)
    assert [(m["direction"], m["kind"], m["body"]) for m in msgs] == [("in", "text", LONG)]
    assert await count(server, Message) == 1
    assert msgs[0]["extra"]["concat"]["total"] == 3
    assert len(msgs[0]["extra"]["concat"]["part_ids"]) == 3
    assert await count(server, SmsPart, SmsPart.joined_at.is_(None)) == 0


async def test_vonage_concat_parts_out_of_order_and_repeated_make_one_message(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await factories.vonage_channel(
        api,
        server,
        api_key="parts2",
        api_secret="api-secret-1",
        signature_secret="sig-secret-for-parts",
    )
    async with factories.simulator(server, "vonage") as control:
        sent = await control.post(
            "/_sim/inbound",
            json={"api_key": "parts2", "from": CUSTOMER, "text": LONG, "part_order": [2, 3, 2, 1]},
        )
        assert sent.status_code == 200, sent.text
        ids = sent.json()["message_ids"]
        assert len(ids) == 3

        async def all_posted() -> bool:
            got = (await control.get("/_sim/deliveries")).json()
            return len([d for d in got if d["messageId"] in ids and d["status"] == 204]) == 4

        await eventually(all_posted, timeout=20)
    # Vonage repeats a part with the same messageId: stored once (3 events, not 4).
    await eventually(lambda: settled(server, 3), timeout=20)
    assert await failed_events(server) == []
    assert await count(server, InboundEvent) == 3
    msgs = await inbound_messages(api)
    assert [(m["direction"], m["body"]) for m in msgs] == [("in", LONG)]
    # The joined message carries the first part's id; part ids are kept in order.
    assert msgs[0]["provider_message_id"] == ids[0]
    assert msgs[0]["extra"]["concat"]["part_ids"] == ids
    assert await count(server, Message) == 1

    # A later, different long message from the same customer is its own message.
    async with factories.simulator(server, "vonage") as control:
        again = await control.post(
            "/_sim/inbound",
            json={"api_key": "parts2", "from": CUSTOMER, "text": LONG[::-1]},
        )
        assert again.status_code == 200, again.text
    await eventually(lambda: settled(server, 6), timeout=20)
    assert await failed_events(server) == []
    bodies = sorted(m["body"] for m in await inbound_messages(api))
    assert bodies == sorted([LONG, LONG[::-1]])
