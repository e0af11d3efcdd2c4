"""Batched status webhooks from the sandbox's WhatsApp simulator (`status_batch`): several
statuses arrive in one POST, each is stored and applied exactly once, even when Meta's
at-least-once delivery sends the whole batch twice."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from tests import factories
from tests.conftest import Owner, Server, eventually
from tests.core.test_whatsapp_e2e import PNID, whatsapp_channel
from tidings.storage.models import InboundEvent, Message


async def test_batched_statuses_are_applied_exactly_once(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    sim = factories.simulator(server, "whatsapp")
    customers = [f"4915112345{i:03d}" for i in range(5)]
    for i, phone in enumerate(customers):
        resp = await sim.post(
            "/_sim/inbound",
            json={"phone_number_id": PNID, "from": phone, "text": f"hello {i}"},
        )
        assert resp.json()["status"] == 200

    async def five_conversations() -> list:
        data = (await api.get("/api/v1/conversations")).json()["data"]
        return data if len(data) == 5 else []

    convs = await eventually(five_conversations)
    config = await sim.post(
        "/_sim/config",
        json={"status_batch": 50, "status_batch_ms": 300, "duplicate_deliveries": 1},
    )
    assert config.status_code == 200
    assert config.json()["status_batch"] == 50
    reply_ids = []
    for c in convs:
        r = await api.post(f"/api/v1/conversations/{c['id']}/messages", json={"text": "thanks!"})
        assert r.status_code == 201, r.text
        reply_ids.append(r.json()["id"])

    async def all_read() -> bool:
        async with server.runtime.db.read() as s:
            rows = (await s.scalars(select(Message.status).where(Message.id.in_(reply_ids)))).all()
        return sorted(rows) == ["read"] * 5

    await eventually(all_read, timeout=30)
    flushed = (await sim.post("/_sim/flush", json={"timeout": 10})).json()
    assert flushed["given_up"] == flushed["pending"] == 0

    deliveries = (await sim.get("/_sim/deliveries")).json()
    batches = [d for d in deliveries if d["kind"] == "status"]
    # 15 statuses (5 x sent/delivered/read) in fewer POSTs than statuses, each POST sent twice.
    assert sum(len(d["refs"]) for d in batches if not d["duplicate"]) == 15
    assert max(len(d["refs"]) for d in batches) > 1
    assert all(d["state"] == "delivered" for d in batches)

    async def statuses_done() -> list:
        async with server.runtime.db.read() as s:
            rows = (
                await s.execute(
                    select(InboundEvent.event_key, InboundEvent.state).where(
                        InboundEvent.event_key.like("status:%")
                    )
                )
            ).all()
        return rows if all(state == "done" for _, state in rows) else []

    rows = await eventually(statuses_done)
    keys = sorted(key for key, _ in rows)
    assert len(keys) == len(set(keys)) == 15
    await sim.aclose()
