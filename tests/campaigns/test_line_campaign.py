"""LINE in campaigns: a campaign's same message goes by multicast, which spends the monthly quota
per recipient; when it runs out the messages fail with LINE's reason and the campaign's fallback
channel (SMS) takes over. A LINE message that went
never triggers "not delivered in time": LINE reports no delivery, sent is as far as it gets."""

from __future__ import annotations

import asyncio
import secrets
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tidings.delivery import fallback
from tidings.storage.models import Contact, FallbackTimer, Message

TOKEN = "campaign-line-token"
SECRET = "campaign-line-secret"
USERS = {
    "U00000000000000000000000000000a01": "+14155550181",
    "U00000000000000000000000000000a02": "+14155550182",
}


async def channels(api: httpx.AsyncClient, server: Server) -> tuple[dict[str, Any], dict[str, Any]]:
    base = f"{server.url}/sandbox/line"
    line = await api.post(
        "/api/v1/channels",
        json={
            "kind": "line",
            "name": "LINE",
            "config": {
                "channel_secret": SECRET,
                "channel_access_token": TOKEN,
                "api_base_url": base,
                "data_api_base_url": base,
            },
        },
    )
    assert line.status_code == 201, line.text
    sms = await api.post(
        "/api/v1/channels",
        json={
            "kind": "twilio",
            "name": "SMS",
            "config": {
                "account_sid": "AC" + secrets.token_hex(16),
                "auth_token": secrets.token_hex(16),
                "from_number": "+14155550100",
                "api_base_url": f"{server.url}/sandbox/twilio",
            },
        },
    )
    assert sms.status_code == 201, sms.text
    return line.json(), sms.json()


async def line_customers(
    server: Server, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> list[int]:
    for user in USERS:
        r = await sim.post(
            "/line/_sim/inbound", json={"token": TOKEN, "user_id": user, "text": "hi"}
        )
        assert r.status_code == 200, r.text

    async def contacts() -> list[int] | None:
        data = (await api.get("/api/v1/contacts")).json()["data"]
        return [c["id"] for c in data] if len(data) == len(USERS) else None

    ids: list[int] = await eventually(contacts)
    # Staff-entered numbers (as a CSV import or a contact edit would give them), for the SMS
    # fallback.
    async with server.runtime.db.write() as s:
        for contact_id, phone in zip(sorted(ids), USERS.values(), strict=True):
            await s.execute(
                update(Contact).where(Contact.id == contact_id).values(phone_e164=phone)
            )
    return ids


async def test_quota_spent_mid_campaign_falls_back_to_sms(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    campaign_workers: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The operator's prices: LINE per message (beyond the allowance), SMS per segment.
    monkeypatch.setenv(
        "TIDINGS_SMS_PRICES",
        '{"currency": "USD", "line": {"*": "0.02"}, "twilio": {"US": "0.0079"}}',
    )
    line, sms = await channels(api, server)
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox", timeout=20
    ) as sandbox:
        contacts = await line_customers(server, api, sandbox)
        # One message left this month (a multicast to two is refused as a whole); reply tokens
        # no longer valid.
        await sandbox.post(
            "/line/_sim/config",
            json={"token": TOKEN, "quota": 1, "quota_used": 0, "reply_token_seconds": 0},
        )
        created = await api.post(
            "/api/v1/campaigns",
            json={
                "name": "LINE spring sale",
                "content": {"text": "20% off this week"},
                "audience": {"contact_ids": contacts},
                "channel_ids": [line["id"]],
                "fallback": {"to_channel_id": sms["id"], "on_failed": True, "after_seconds": 600},
            },
        )
        assert created.status_code == 201, created.text
        launched = await api.post(f"/api/v1/campaigns/{created.json()['id']}/launch")
        assert launched.status_code == 200, launched.text

        async def two_sms() -> list[Any] | None:
            sent = (await sandbox.get("/twilio/_sim/sent")).json()
            return sent if len(sent) == 2 else None

        texts = await eventually(two_sms, timeout=30)
        assert {dict(t["params"])["Body"] for t in texts} == {"20% off this week"}
        calls = (await sandbox.get("/line/_sim/sent", params={"token": TOKEN})).json()
        sends = [(c["endpoint"], c["status"]) for c in calls if c["endpoint"] != "reply"]
        assert sends == [("multicast", 429)]
        customers_got = (
            await sandbox.get("/line/_sim/conversations", params={"token": TOKEN})
        ).json()
        assert [m["text"] for m in customers_got if m["direction"] == "out"] == []

    async with server.runtime.db.read() as s:
        failed = (
            await s.scalars(
                select(Message).where(Message.channel_id == line["id"], Message.status == "failed")
            )
        ).all()
        costs = (
            await s.scalars(select(Message.cost_estimate).where(Message.direction == "out"))
        ).all()
    assert len(failed) == 2
    assert all("monthly limit" in (m.error_reason or "") for m in failed)
    # Two LINE messages planned at 0.02 each, two SMS fallbacks of one segment.
    assert sorted(costs) == [Decimal("0.0079"), Decimal("0.0079"), Decimal("0.02"), Decimal("0.02")]


async def test_a_sent_line_reply_never_falls_back_for_want_of_a_receipt(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    for task in list(server.runtime.background):
        if task.get_name() == "worker-fallback":
            task.cancel()
    _line, sms = await channels(api, server)
    await api.put(
        f"/api/v1/inboxes/{owner.inbox_id}/fallback",
        json={"to_channel_id": sms["id"], "on_failed": True, "after_seconds": 1},
    )
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox", timeout=20
    ) as sandbox:
        await line_customers(server, api, sandbox)
    conv = (await api.get("/api/v1/conversations")).json()["data"][0]
    reply = (
        await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hi"})
    ).json()

    async def sent() -> bool:
        msgs = (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["data"]
        return next(m for m in msgs if m["id"] == reply["id"])["status"] == "sent"

    await eventually(sent)
    await asyncio.sleep(1.5)
    assert await fallback.fire_due(server.runtime) == 1
    async with server.runtime.db.read() as s:
        [timer] = (await s.scalars(select(FallbackTimer))).all()
    assert timer.state == "not_needed" and "LINE reports no delivery" in (timer.outcome or "")
    msgs = (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["data"]
    assert not [m for m in msgs if m["extra"].get("fallback_of")]
