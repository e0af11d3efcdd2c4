"""Shared steps for the automation tests: a sandbox WhatsApp channel, customer messages from
the simulator, and waiting until the automation worker has caught up."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from tests import factories
from tests.conftest import Server, eventually
from tidings.storage.models import AutomationEvent, RuleRun

PNID = "106540352242922"


async def whatsapp_channel(server: Server, api: httpx.AsyncClient) -> dict[str, Any]:
    return await factories.whatsapp_channel(
        api, server, phone_number_id=PNID, display_phone_number="15550783881"
    )


def simulator(server: Server) -> httpx.AsyncClient:
    return factories.simulator(server, "whatsapp")


async def customer_says(
    sim: httpx.AsyncClient, text: str, sender: str = "16505551234", **extra: Any
) -> str:
    resp = await sim.post(
        "/_sim/inbound",
        json={"phone_number_id": PNID, "from": sender, "name": "Sheena", "text": text, **extra},
    )
    assert resp.json()["status"] == 200, resp.text
    return str(resp.json()["id"])


async def texts_sent(sim: httpx.AsyncClient) -> list[str]:
    """Texts the simulated Graph API accepted from Tidings (what reached the customer)."""
    requests = (await sim.get("/_sim/sent", params={"phone_number_id": PNID})).json()
    return [
        r["body"]["text"]["body"]
        for r in requests
        if r["body"].get("type") == "text" and r["response"]["status"] == 200
    ]


async def settled(server: Server) -> None:
    """Wait until the ingest and automation queues are empty (every event seen, every rule
    run finished): after this, anything a rule would do has been done."""

    async def idle() -> bool:
        async with server.runtime.db.read() as s:
            from tidings.storage.models import InboundEvent

            pending_in = await s.scalar(
                select(func.count())
                .select_from(InboundEvent)
                .where(InboundEvent.state == "pending")
            )
            pending = await s.scalar(
                select(func.count())
                .select_from(AutomationEvent)
                .where(AutomationEvent.state == "pending")
            )
            running = await s.scalar(
                select(func.count()).select_from(RuleRun).where(RuleRun.state == "running")
            )
        return pending_in == 0 and pending == 0 and running == 0

    await eventually(idle, timeout=20)


async def conversations(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    return list((await api.get("/api/v1/conversations")).json()["data"])


async def thread(api: httpx.AsyncClient, conv_id: int) -> list[dict[str, Any]]:
    return list((await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"])


async def runs(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    resp = await api.get("/api/v1/automation/runs", params=params)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["data"])
