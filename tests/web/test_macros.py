"""Macros (issue 18 item 5): validated like a rule's actions, run on a conversation through the
automation engine in one go; refused steps are reported and the rest still run; admins keep
the list, agents run them."""

from __future__ import annotations

import httpx

from tests.conftest import Owner, Server
from tests.ui.helpers import api_channel, customer_says, wait_conversations


async def test_macro_runs_its_actions_in_one_go(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await api_channel(api, server, "mac")
    await customer_says(server, "mac", "cust-1", "Refund please", name="Rita")
    conv = (await wait_conversations(api, 1))[0]
    bad = await api.post(
        "/api/v1/macros", json={"name": "x", "actions": [{"type": "launch_rocket"}]}
    )
    assert bad.status_code == 422
    hook = await api.post(
        "/api/v1/macros",
        json={"name": "x", "actions": [{"type": "webhook", "url": "https://example.com"}]},
    )
    assert hook.status_code == 422 and "webhook" in hook.text
    made = await api.post(
        "/api/v1/macros",
        json={
            "name": "Refund",
            "actions": [
                {"type": "add_label", "name": "refund"},
                {"type": "set_priority", "priority": "high"},
                {"type": "assign_agent", "agent_id": 999_999},
                {"type": "add_note", "text": "Refund checklist started"},
                {"type": "resolve"},
            ],
        },
    )
    assert made.status_code == 201, made.text
    macro = made.json()
    assert len(macro["steps"]) == 5
    again = await api.post(
        "/api/v1/macros", json={"name": "Refund", "actions": [{"type": "resolve"}]}
    )
    assert again.status_code == 409

    ran = await api.post(f"/api/v1/conversations/{conv['id']}/macros/{macro['id']}/run")
    assert ran.status_code == 200, ran.text
    outcomes = [(s["action"], s["outcome"]) for s in ran.json()["steps"]]
    assert outcomes == [
        ("add_label", "ok"),
        ("set_priority", "ok"),
        ("assign_agent", "failed"),
        ("add_note", "ok"),
        ("resolve", "ok"),
    ]
    got = (await api.get(f"/api/v1/ui/conversations/{conv['id']}")).json()
    assert (got["labels"], got["priority"], got["status"]) == (["refund"], "high", "resolved")
    msgs = (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["data"]
    assert any(m["kind"] == "system" and "ran the macro Refund" in (m["body"] or "") for m in msgs)
    assert any(m["kind"] == "note" and m["body"] == "Refund checklist started" for m in msgs)
    missing = await api.post(f"/api/v1/conversations/{conv['id']}/macros/999999/run")
    assert missing.status_code == 404
    assert [m["name"] for m in (await api.get("/api/v1/macros")).json()] == ["Refund"]
    assert (await api.delete(f"/api/v1/macros/{macro['id']}")).status_code == 204
    assert (await api.get("/api/v1/macros")).json() == []
