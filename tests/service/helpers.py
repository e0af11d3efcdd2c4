"""Shared steps for the assignment, SLA and CSAT tests: a WhatsApp channel on the simulator,
agents with their own API tokens, customers writing through the simulator's signed webhooks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from tests import factories
from tests.conftest import Owner, Server, eventually
from tidings.access import Principal
from tidings.actions.admin import create_api_token
from tidings.domain.enums import Role
from tidings.storage.models import Conversation

PNID = "106540352242955"


async def whatsapp_channel(server: Server, api: httpx.AsyncClient) -> dict[str, Any]:
    return await factories.whatsapp_channel(
        api, server, phone_number_id=PNID, display_phone_number="15550783999"
    )


@dataclass
class AgentClient:
    id: int
    name: str
    http: httpx.AsyncClient


async def make_agent(
    server: Server, owner: Owner, api: httpx.AsyncClient, name: str
) -> AgentClient:
    """A real agent with a real token (minted by the same action `POST /api_tokens` runs)."""
    resp = await api.post(
        "/api/v1/admin/agents",
        json={
            "email": f"{name.lower()}@example.com",
            "name": name,
            "role": "agent",
            "password": "correct horse battery",
        },
    )
    assert resp.status_code == 201, resp.text
    agent_id = resp.json()["id"]
    who = Principal(owner.workspace_id, agent_id, Role.AGENT, frozenset())
    token = await create_api_token(server.runtime, who, "tests")
    http = httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=20
    )
    return AgentClient(agent_id, name, http)


async def set_members(api: httpx.AsyncClient, inbox_id: int, agent_ids: list[int]) -> None:
    resp = await api.put(f"/api/v1/admin/inboxes/{inbox_id}/members", json={"agent_ids": agent_ids})
    assert resp.status_code == 200, resp.text


async def customer_writes(
    server: Server, wa_id: str, text: str, *, hours_ago: float = 0, name: str = "Customer"
) -> None:
    async with factories.simulator(server, "whatsapp") as sim:
        resp = await sim.post(
            "/_sim/inbound",
            json={
                "phone_number_id": PNID,
                "from": wa_id,
                "name": name,
                "text": text,
                "timestamp": int(time.time() - hours_ago * 3600),
            },
        )
    assert resp.status_code == 200 and resp.json()["status"] == 200, resp.text


async def conversations(server: Server) -> list[Conversation]:
    async with server.runtime.db.read() as s:
        return list((await s.scalars(select(Conversation).order_by(Conversation.id))).all())


async def wait_for(check: Any, timeout: float = 15.0) -> Any:
    return await eventually(check, timeout=timeout)


async def sent_to(server: Server, wa_id: str) -> list[dict[str, Any]]:
    """Graph /messages request bodies the simulator accepted for this customer."""
    async with factories.simulator(server, "whatsapp") as sim:
        rows = (await sim.get("/_sim/sent", params={"phone_number_id": PNID})).json()
    return [
        r["body"]
        for r in rows
        if isinstance(r.get("body"), dict)
        and str(r["body"].get("to", "")).lstrip("+") == wa_id
        and r["response"]["status"] == 200
    ]
