"""WhatsApp template-status webhooks keep the template table current, and coexistence
revoke/edit webhooks change the stored message — through real HTTP from the simulator."""

from __future__ import annotations

import time
from typing import Any

import httpx
from sqlalchemy import select

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.core.test_whatsapp_e2e import PNID, whatsapp_channel
from tidings.storage.models import Template

WABA = "102290129340398"


def template_update(event: str, time_: int) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA,
                "time": time_,
                "changes": [
                    {
                        "field": "message_template_status_update",
                        "value": {
                            "event": event,
                            "message_template_id": 1689556908129835,
                            "message_template_name": "abandoned_cart",
                            "message_template_language": "en",
                            "reason": "NONE",
                            "message_template_category": "MARKETING",
                        },
                    }
                ],
            }
        ],
    }


def revision(kind: str, original: str, body: dict[str, Any]) -> dict[str, Any]:
    message = {
        "from": "16505551234",
        "id": f"wamid.{kind.upper()}{int(time.time() * 1000)}",
        "timestamp": str(int(time.time()) + 1),
        "type": kind,
        kind: {"original_message_id": original, **body},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
        "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "16505551234"}],
        "messages": [message],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA, "changes": [{"field": "messages", "value": value}]}],
    }


async def test_template_status_updates_the_template(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/whatsapp"
    ) as sim:
        for event, at in (("PENDING", 1751247000), ("APPROVED", 1751247548)):
            resp = await sim.post(
                "/_sim/deliver_raw",
                json={"phone_number_id": PNID, "payload": template_update(event, at)},
            )
            assert resp.json()["status"] == 200

    async def approved() -> list[tuple[str, str, str, str]] | None:
        async with server.runtime.db.read() as s:
            rows = (await s.scalars(select(Template))).all()
        got = [(t.name, t.language, t.status, t.category) for t in rows]
        return got if got and got[0][2] == "APPROVED" else None

    assert await eventually(approved) == [("abandoned_cart", "en", "APPROVED", "MARKETING")]


async def test_revoke_and_edit_change_the_stored_message(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/whatsapp"
    ) as sim:
        first = await sim.post(
            "/_sim/inbound", json={"phone_number_id": PNID, "from": "16505551234", "text": "Red"}
        )
        wamid = first.json()["id"]

        async def thread() -> list[dict[str, Any]]:
            convs = (await api.get("/api/v1/conversations")).json()["data"]
            if not convs:
                return []
            url = f"/api/v1/conversations/{convs[0]['id']}/messages"
            data: list[dict[str, Any]] = (await api.get(url)).json()["data"]
            return data

        await eventually(thread)
        edit = revision("edit", wamid, {"message": {"type": "text", "text": {"body": "Blue"}}})
        await sim.post("/_sim/deliver_raw", json={"phone_number_id": PNID, "payload": edit})

        async def edited() -> list[dict[str, Any]] | None:
            msgs = await thread()
            return msgs if msgs[0]["body"] == "Blue" else None

        [msg] = await eventually(edited)
        assert msg["extra"]["edits"][0]["previous"] == "Red"

        revoke = revision("revoke", wamid, {})
        await sim.post("/_sim/deliver_raw", json={"phone_number_id": PNID, "payload": revoke})

        async def revoked() -> list[dict[str, Any]] | None:
            msgs = await thread()
            return msgs if msgs[0]["body"] is None else None

        [msg] = await eventually(revoked)
        assert msg["extra"]["deleted_at"]
