"""Notifications (issue 18 item 4): a mention, an assignment and a customer's reply each
notify the right agent once, live and in the list; nobody else hears of them; read marks;
Mentions and Participating views; saved views."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import Owner, Server, eventually
from tests.ui.helpers import api_channel, customer_says, wait_conversations
from tidings.access import Principal
from tidings.actions.admin import issue_api_token
from tidings.domain.enums import Role


async def _agent(api: httpx.AsyncClient, server: Server, owner: Owner, email: str, name: str,
                 inboxes: list[int]) -> tuple[int, httpx.AsyncClient]:  # fmt: skip
    made = await api.post(
        "/api/v1/admin/agents",
        json={"email": email, "name": name, "role": "agent", "password": "long-password-1"},
    )
    assert made.status_code == 201, made.text
    agent_id = made.json()["id"]
    for inbox in inboxes:
        members = (await api.get("/api/v1/admin/inboxes")).json()
        current = next(i for i in members if i["id"] == inbox).get("member_ids", [])
        got = await api.put(
            f"/api/v1/admin/inboxes/{inbox}/members",
            json={"agent_ids": sorted({owner.agent_id, agent_id, *current})},
        )
        assert got.status_code == 200, got.text
    who = Principal(owner.workspace_id, agent_id, Role.AGENT, frozenset(inboxes))
    _, token = await issue_api_token(server.runtime, who, "test")
    client = httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=20
    )
    return agent_id, client


async def _bell(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.get("/api/v1/notifications")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_mention_assignment_and_reply_notify_only_their_agent(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await api_channel(api, server, "bell")
    other_inbox = (await api.post("/api/v1/admin/inboxes", json={"name": "Elsewhere"})).json()
    bo_id, bo = await _agent(api, server, owner, "bo@example.com", "Bo Berg", [owner.inbox_id])
    _, cy = await _agent(api, server, owner, "cy@example.com", "Cy Chan", [other_inbox["id"]])
    await customer_says(server, "bell", "cust-1", "Where is my parcel?", name="Carl")
    conv = (await wait_conversations(api, 1))[0]

    # Bo's live stream: the notification arrives as `notification.created`, for Bo only.
    got: list[str] = []

    async def listen() -> None:
        async with bo.stream("GET", "/api/v1/events", timeout=30) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("event: "):
                    got.append(line[7:])

    task = asyncio.create_task(listen())
    try:
        await asyncio.sleep(0.5)
        # The owner mentions Bo and Cy (Cy cannot see this inbox: no notification for Cy).
        note = await api.post(
            f"/api/v1/ui/conversations/{conv['id']}/notes", json={"text": "@bo and @cy look"}
        )
        assert note.status_code == 201, note.text
        # ...assigns it to Bo (a system line says so), and the customer writes again.
        patched = await api.patch(
            f"/api/v1/ui/conversations/{conv['id']}", json={"assignee_id": bo_id}
        )
        assert patched.status_code == 200, patched.text
        await customer_says(server, "bell", "cust-1", "Any news?")

        async def three() -> dict[str, Any] | None:
            body = await _bell(bo)
            return body if len(body["items"]) == 3 else None

        body = await eventually(three)
        assert [n["kind"] for n in body["items"]] == ["reply", "assigned", "mention"]
        assert body["unread"] == 3
        assert {n["contact_name"] for n in body["items"]} == {"Carl"}
        assert body["items"][2]["actor_name"] and body["items"][2]["body"] == "@bo and @cy look"
        assert body["items"][0]["body"] == "Any news?" and body["items"][0]["actor_name"] is None

        async def heard() -> bool:
            return got.count("notification.created") >= 3

        await eventually(heard)
    finally:
        task.cancel()
    assert (await _bell(cy))["items"] == []
    assert (await _bell(api))["items"] == []  # the owner did it all: nothing for them

    # Views: Mentions and Participating hold Carl for Bo, not for the owner's Mentions.
    def ids(resp: httpx.Response) -> list[int]:
        assert resp.status_code == 200, resp.text
        return [c["id"] for c in resp.json()["data"]]

    q = {"status": "any"}
    assert ids(await bo.get("/api/v1/ui/conversations", params={**q, "view": "mentions"})) == [
        conv["id"]
    ]
    assert ids(await bo.get("/api/v1/ui/conversations", params={**q, "view": "participating"})) == [
        conv["id"]
    ]
    assert ids(await api.get("/api/v1/ui/conversations", params={**q, "view": "mentions"})) == []
    bad = await bo.get("/api/v1/ui/conversations", params={"view": "bogus"})
    assert bad.status_code == 422  # InvalidInput: the API's "bad input" status

    # Read marks: one, then the rest; another agent's ids change nothing.
    first = body["items"][0]["id"]
    assert (await cy.post("/api/v1/notifications/read", json={"ids": [first]})).json()[
        "marked"
    ] == 0
    one = (await bo.post("/api/v1/notifications/read", json={"ids": [first]})).json()
    assert one == {"marked": 1, "unread": 2}
    rest = (await bo.post("/api/v1/notifications/read", json={"all": True})).json()
    assert rest == {"marked": 2, "unread": 0}
    assert (await bo.post("/api/v1/notifications/read", json={})).status_code == 422
    await bo.aclose()
    await cy.aclose()


async def test_saved_views_are_per_agent(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    made = await api.post(
        "/api/v1/views",
        json={"name": "Urgent mine", "filters": {"view": "mine", "status": "open"}},
    )
    assert made.status_code == 201, made.text
    again = await api.post("/api/v1/views", json={"name": "urgent MINE", "filters": {}})
    assert again.status_code == 409
    bad = await api.post("/api/v1/views", json={"name": "x", "filters": {"nope": 1}})
    assert bad.status_code == 422
    listed = (await api.get("/api/v1/views")).json()
    assert [(v["name"], v["filters"]) for v in listed] == [
        ("Urgent mine", {"view": "mine", "status": "open"})
    ]
    _, bo = await _agent(api, server, owner, "bo@example.com", "Bo Berg", [owner.inbox_id])
    assert (await bo.get("/api/v1/views")).json() == []
    assert (await bo.delete(f"/api/v1/views/{made.json()['id']}")).status_code == 404
    assert (await api.delete(f"/api/v1/views/{made.json()['id']}")).status_code == 204
    assert (await api.get("/api/v1/views")).json() == []
    await bo.aclose()


async def test_every_way_of_assigning_tells_the_assignee(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """The REST API, a bulk action and a rule used to assign without the thread's line, so the
    new assignee was never told; each now writes one line and one notification."""
    await api_channel(api, server, "bell")
    bo_id, bo = await _agent(api, server, owner, "bo@example.com", "Bo Berg", [owner.inbox_id])
    rule = await api.post(
        "/api/v1/automation/rules",
        json={
            "name": "VIPs",
            "event": "message.received",
            "conditions": [{"type": "text_matches", "pattern": r"\bvip\b"}],
            "actions": [{"type": "assign_agent", "agent_id": bo_id}],
        },
    )
    assert rule.status_code == 201, rule.text
    await customer_says(server, "bell", "cust-1", "Hello", name="Hal")
    await customer_says(server, "bell", "cust-2", "Hi", name="Hil")
    await customer_says(server, "bell", "cust-3", "I am a vip", name="Val")
    convs = await wait_conversations(api, 3)
    ids = sorted(c["id"] for c in convs)

    async def by_rule() -> list[dict[str, Any]] | None:
        items = [n for n in (await _bell(bo))["items"] if n["kind"] == "assigned"]
        return items or None

    ruled = await eventually(by_rule)
    first = ruled[0]["conversation_id"]
    rest = [c for c in ids if c != first]
    patched = await api.patch(f"/api/v1/conversations/{rest[0]}", json={"assignee_id": bo_id})
    assert patched.status_code == 200, patched.text
    bulk = await api.post(
        "/api/v1/ui/conversations/bulk", json={"ids": [rest[1]], "assignee_id": bo_id}
    )
    assert bulk.status_code == 200, bulk.text

    async def three() -> list[dict[str, Any]] | None:
        items = [n for n in (await _bell(bo))["items"] if n["kind"] == "assigned"]
        return items if len(items) == 3 else None

    assigned = await eventually(three)
    assert sorted(n["conversation_id"] for n in assigned) == ids
    for conv_id in ids:
        messages = (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]
        lines = [
            m for m in messages if m["kind"] == "system" and m["extra"].get("event") == "assigned"
        ]
        assert len(lines) == 1, (conv_id, [m["body"] for m in messages])


async def test_profile_preferences_turn_kinds_off(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """An agent who turned mentions and assignments off on their profile hears only of the
    customer's reply; turning assignments back on brings the next one."""
    await api_channel(api, server, "prefs")
    bo_id, bo = await _agent(api, server, owner, "bo@example.com", "Bo Berg", [owner.inbox_id])
    off = await bo.patch(
        "/api/v1/me/profile", json={"notify": {"mentions": False, "assigned": False}}
    )
    assert off.status_code == 200, off.text
    await customer_says(server, "prefs", "cust-1", "Hello?", name="Carl")
    conv = (await wait_conversations(api, 1))[0]
    note = await api.post(f"/api/v1/ui/conversations/{conv['id']}/notes", json={"text": "@bo"})
    assert note.status_code == 201, note.text
    patched = await api.patch(f"/api/v1/ui/conversations/{conv['id']}", json={"assignee_id": bo_id})
    assert patched.status_code == 200, patched.text
    await customer_says(server, "prefs", "cust-1", "Still there?")

    async def replied() -> list[str] | None:
        kinds = [n["kind"] for n in (await _bell(bo))["items"]]
        return kinds if kinds else None

    assert await eventually(replied) == ["reply"]

    on = await bo.patch("/api/v1/me/profile", json={"notify": {"assigned": True}})
    assert on.status_code == 200, on.text
    assert on.json()["notify"]["assigned"] is True and on.json()["notify"]["mentions"] is False
    back = await api.patch(f"/api/v1/ui/conversations/{conv['id']}", json={"assignee_id": None})
    assert back.status_code == 200, back.text
    again = await api.patch(f"/api/v1/ui/conversations/{conv['id']}", json={"assignee_id": bo_id})
    assert again.status_code == 200, again.text
    assert [n["kind"] for n in (await _bell(bo))["items"]] == ["assigned", "reply"]
    await bo.aclose()
