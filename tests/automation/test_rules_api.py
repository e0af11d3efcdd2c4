"""The rules API: validation with clear 4xx (nothing stored), admin-only access, workspace
isolation, update/delete, and the dry run that changes nothing."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import func, select

from tests.automation.helpers import (
    conversations,
    customer_says,
    settled,
    simulator,
    whatsapp_channel,
)
from tests.conftest import Owner, Server, eventually
from tidings.actions.admin import create_api_token, hash_token
from tidings.api.auth import principal_for_agent
from tidings.storage.models import Agent, ApiToken, AutomationRule, Message, Workspace
from tidings.storage.types import utcnow

GOOD = {
    "name": "VIP",
    "event": "message.received",
    "conditions": [{"type": "contact_attribute", "key": "tier", "value": "gold"}],
    "actions": [{"type": "add_label", "name": "vip"}],
}


async def rule_count(server: Server) -> int:
    async with server.runtime.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(AutomationRule)) or 0)


async def test_invalid_rules_are_refused_with_the_field_named(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    cases = [
        ({**GOOD, "name": ""}, "name"),
        ({**GOOD, "event": "message.sent"}, "event"),
        ({**GOOD, "event": "no_reply"}, "minutes"),
        ({**GOOD, "event": "no_reply", "minutes": 0}, "minutes"),
        ({**GOOD, "match": "some"}, "match"),
        ({**GOOD, "actions": []}, "actions"),
        ({**GOOD, "actions": [{"type": "explode"}]}, "actions[0].type"),
        (
            {**GOOD, "actions": [{"type": "set_priority", "priority": "asap"}]},
            "actions[0].priority",
        ),
        ({**GOOD, "actions": [{"type": "assign_agent", "agent_id": "me"}]}, "actions[0].agent_id"),
        ({**GOOD, "actions": [{"type": "assign_agent", "agent_id": 999}]}, "actions[0].agent_id"),
        ({**GOOD, "actions": [{"type": "webhook", "url": "ftp://x"}]}, "actions[0].url"),
        ({**GOOD, "conditions": [{"type": "text_matches", "pattern": "(unclosed"}]}, "pattern"),
        ({**GOOD, "conditions": [{"type": "text_matches", "pattern": "a" * 201}]}, "pattern"),
        ({**GOOD, "conditions": [{"type": "channel_kind", "values": ["pigeon"]}]}, "conditions[0]"),
        ({**GOOD, "conditions": [{"type": "inbox", "values": [424242]}]}, "conditions[0].values"),
        ({**GOOD, "conditions": [{"type": "language", "values": ["english"]}]}, "conditions[0]"),
        ({**GOOD, "conditions": [{"type": "business_hours"}]}, "conditions[0].inside"),
        ({**GOOD, "conditions": "all"}, "conditions"),
        ({**GOOD, "conditions": [{"type": "channel_kind", "values": [{"a": 1}]}]}, "conditions[0]"),
        ({**GOOD, "name": "nul\x00byte"}, "name"),
        ({**GOOD, "position": -1}, "position"),
        ([GOOD], "a rule is a JSON object"),
    ]
    for body, field in cases:
        resp = await api.post("/api/v1/automation/rules", json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert field in resp.json()["error"]["message"], (field, resp.text)
    not_json = await api.post(
        "/api/v1/automation/rules", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    assert await rule_count(server) == 0

    created = await api.post("/api/v1/automation/rules", json=GOOD)
    assert created.status_code == 201, created.text
    clash = await api.post("/api/v1/automation/rules", json=GOOD)
    assert clash.status_code == 409
    assert await rule_count(server) == 1


async def test_crud_access_and_isolation(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    rule = (await api.post("/api/v1/automation/rules", json=GOOD)).json()
    assert rule["event"] == "message.received" and rule["active"] is True
    listed = (await api.get("/api/v1/automation/rules")).json()["data"]
    assert [r["id"] for r in listed] == [rule["id"]]

    updated = await api.put(
        f"/api/v1/automation/rules/{rule['id']}",
        json={**GOOD, "name": "VIP customers", "active": False, "event": "no_reply", "minutes": 30},
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["name"], updated.json()["minutes"], updated.json()["active"]) == (
        "VIP customers",
        30,
        False,
    )

    # An agent may not manage rules.
    agent = await api.post(
        "/api/v1/admin/agents",
        json={
            "email": "ag@example.com",
            "name": "Ag",
            "role": "agent",
            "password": "pw-1234567890",
        },
    )
    assert agent.status_code == 201, agent.text
    who = await principal_for_agent(server.runtime, agent.json()["id"])
    assert who is not None
    token = await create_api_token(server.runtime, who, "agent token")
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        assert (await client.get("/api/v1/automation/rules")).status_code == 403
        assert (await client.post("/api/v1/automation/rules", json=GOOD)).status_code == 403

    # Another workspace sees nothing of ours and cannot touch it.
    async with server.runtime.db.write() as s:
        ws = Workspace(name="Other", created_at=utcnow())
        s.add(ws)
        await s.flush()
        them_owner = Agent(workspace_id=ws.id, email="b@example.com", name="B", role="owner")
        s.add(them_owner)
        await s.flush()
        s.add(
            ApiToken(
                workspace_id=ws.id,
                agent_id=them_owner.id,
                name="t",
                token_hash=hash_token("tid_other_owner"),
            )
        )
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": "Bearer tid_other_owner"}
    ) as them:
        assert (await them.get("/api/v1/automation/rules")).json()["data"] == []
        assert (await them.get(f"/api/v1/automation/rules/{rule['id']}")).status_code == 404
        assert (await them.delete(f"/api/v1/automation/rules/{rule['id']}")).status_code == 404
        assert (
            await them.put(f"/api/v1/automation/rules/{rule['id']}", json=GOOD)
        ).status_code == 404
        # Naming our inbox in their rule is refused.
        theirs = await them.post(
            "/api/v1/automation/rules",
            json={**GOOD, "conditions": [{"type": "inbox", "values": [owner.inbox_id]}]},
        )
        assert theirs.status_code == 422

    assert (await api.delete(f"/api/v1/automation/rules/{rule['id']}")).status_code == 204
    assert (await api.get(f"/api/v1/automation/rules/{rule['id']}")).status_code == 404


async def test_dry_run_explains_and_changes_nothing(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    canned = await api.post(
        "/api/v1/admin/canned_replies", json={"short_code": "sorry", "content": "Sorry!"}
    )
    sim = simulator(server)
    await customer_says(sim, "my parcel is late", timestamp=int(time.time()) - 3 * 24 * 3600)
    conv = (await eventually(lambda: conversations(api)))[0]
    await settled(server)

    async def count_messages() -> int:
        async with server.runtime.db.read() as s:
            return int(await s.scalar(select(func.count()).select_from(Message)) or 0)

    before = await count_messages()
    draft = {
        "name": "Late parcels",
        "event": "message.received",
        "conditions": [
            {"type": "text_contains", "values": ["late", "delayed"]},
            {"type": "channel_kind", "values": ["whatsapp"]},
            {"type": "label", "name": "vip", "negate": True},
        ],
        "actions": [
            {"type": "add_label", "name": "late"},
            {"type": "send_canned_reply", "canned_reply_id": canned.json()["id"]},
        ],
    }
    resp = await api.post(
        "/api/v1/automation/rules/test", json={"rule": draft, "conversation_id": conv["id"]}
    )
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["matched"] is True
    assert [c["matched"] for c in result["conditions"]] == [True, True, True]
    assert result["actions"][0] == {
        "action": "add_label",
        "would": "added label late",
        "allowed": True,
    }
    assert result["actions"][1]["allowed"] is False
    assert "service window is closed" in result["actions"][1]["reason"]

    miss = await api.post(
        "/api/v1/automation/rules/test",
        json={
            "rule": {**draft, "conditions": [{"type": "text_contains", "values": ["refund"]}]},
            "conversation_id": conv["id"],
        },
    )
    assert miss.json()["matched"] is False
    bad = await api.post("/api/v1/automation/rules/test", json={"rule": draft})
    assert bad.status_code == 422
    missing = await api.post(
        "/api/v1/automation/rules/test", json={"rule": draft, "conversation_id": 987654}
    )
    assert missing.status_code == 404
    assert await count_messages() == before
    labels = (await api.get(f"/api/v1/conversations/{conv['id']}")).json()["labels"]
    assert labels == []
    await sim.aclose()
