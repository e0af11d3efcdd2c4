"""Auto-assignment end to end over real HTTP: customers write through the WhatsApp simulator's
signed webhooks, the assignment worker hands conversations out, agents act with their own
tokens. Runs on SQLite and on PostgreSQL (TIDINGS_TEST_DATABASE_URL)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.conftest import Owner, Server
from tests.service.helpers import (
    conversations,
    customer_writes,
    make_agent,
    set_members,
    wait_for,
    whatsapp_channel,
)


async def test_round_robin_spreads_over_online_agents_and_skips_offline(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    ana = await make_agent(server, owner, api, "Ana")
    bo = await make_agent(server, owner, api, "Bo")
    cy = await make_agent(server, owner, api, "Cy")
    await set_members(api, owner.inbox_id, [ana.id, bo.id, cy.id])
    off = await cy.http.put("/api/v1/agents/me/availability", json={"availability": "offline"})
    assert off.status_code == 200 and off.json()["availability"] == "offline"
    resp = await api.put(
        f"/api/v1/inboxes/{owner.inbox_id}/assignment", json={"mode": "round_robin"}
    )
    assert resp.status_code == 200 and resp.json()["mode"] == "round_robin"

    for n in range(4):
        await customer_writes(server, f"1650555100{n}", f"Hello {n}")

    async def all_assigned() -> list | None:
        convs = await conversations(server)
        return convs if len(convs) == 4 and all(c.assignee_id for c in convs) else None

    convs = await wait_for(all_assigned)
    assert Counter(c.assignee_id for c in convs) == {ana.id: 2, bo.id: 2}
    # Each assignment left a line in the thread.
    thread = (await api.get(f"/api/v1/conversations/{convs[0].id}/messages")).json()["data"]
    assert [m["kind"] for m in thread].count("system") == 1
    assert "round robin" in next(m["body"] for m in thread if m["kind"] == "system")
    # Bad input: a clear 422, nothing changed.
    bad = await api.put(f"/api/v1/inboxes/{owner.inbox_id}/assignment", json={"mode": "random"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"
    denied = await ana.http.put(
        f"/api/v1/inboxes/{owner.inbox_id}/assignment", json={"mode": "off"}
    )
    assert denied.status_code == 403
    assert (await api.get(f"/api/v1/inboxes/{owner.inbox_id}/assignment")).json()[
        "mode"
    ] == "round_robin"


async def test_least_busy_queues_at_capacity_and_assigns_when_one_resolves(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    ana = await make_agent(server, owner, api, "Ana")
    bo = await make_agent(server, owner, api, "Bo")
    await set_members(api, owner.inbox_id, [ana.id, bo.id])
    resp = await api.put(
        f"/api/v1/inboxes/{owner.inbox_id}/assignment",
        json={"mode": "least_busy", "capacity": 1},
    )
    assert resp.json() == {
        "inbox_id": owner.inbox_id,
        "mode": "least_busy",
        "capacity": 1,
        "agent_capacities": {},
    }
    for n in range(2):
        await customer_writes(server, f"1650555200{n}", f"First {n}")

    async def two_assigned() -> list | None:
        convs = await conversations(server)
        return convs if len(convs) == 2 and all(c.assignee_id for c in convs) else None

    first = await wait_for(two_assigned)
    assert {c.assignee_id for c in first} == {ana.id, bo.id}

    await customer_writes(server, "16505552009", "Third, waiting")

    async def third_exists() -> list | None:
        convs = await conversations(server)
        return convs if len(convs) == 3 else None

    convs = await wait_for(third_exists)
    third = convs[2]
    queue = (await api.get(f"/api/v1/inboxes/{owner.inbox_id}/queue")).json()
    assert queue["waiting"] == 1 and queue["mode"] == "least_busy"
    assert third.assignee_id is None

    # Ana resolves hers: capacity frees, the queued conversation goes to her.
    anas = next(c for c in first if c.assignee_id == ana.id)
    done = await ana.http.patch(f"/api/v1/conversations/{anas.id}", json={"status": "resolved"})
    assert done.status_code == 200, done.text

    async def third_assigned() -> int | None:
        convs = await conversations(server)
        return convs[2].assignee_id

    assert await wait_for(third_assigned) == ana.id
    queue = (await api.get(f"/api/v1/inboxes/{owner.inbox_id}/queue")).json()
    assert queue["waiting"] == 0
    # Bo still holds exactly one.
    assert Counter(c.assignee_id for c in await conversations(server) if c.status == "open") == {
        ana.id: 1,
        bo.id: 1,
    }


async def test_offline_agent_conversations_are_reassigned(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    ana = await make_agent(server, owner, api, "Ana")
    bo = await make_agent(server, owner, api, "Bo")
    await set_members(api, owner.inbox_id, [ana.id, bo.id])
    await api.put(f"/api/v1/inboxes/{owner.inbox_id}/assignment", json={"mode": "least_busy"})
    for n in range(4):
        await customer_writes(server, f"1650555300{n}", f"Hi {n}")

    async def all_assigned() -> list | None:
        convs = await conversations(server)
        return convs if len(convs) == 4 and all(c.assignee_id for c in convs) else None

    convs = await wait_for(all_assigned)
    assert Counter(c.assignee_id for c in convs) == {ana.id: 2, bo.id: 2}

    resp = await ana.http.put("/api/v1/agents/me/availability", json={"availability": "offline"})
    assert resp.status_code == 200
    # In the same transaction: Ana's two went back to the queue and on to Bo.
    after = await conversations(server)
    assert Counter(c.assignee_id for c in after) == {bo.id: 4}
    thread = (await api.get(f"/api/v1/conversations/{convs[0].id}/messages")).json()["data"]
    lines = [m["body"] for m in thread if m["kind"] == "system"]
    if convs[0].assignee_id == ana.id:
        assert "Back in the queue: Ana went offline" in lines

    # Back online, she gets new work again (least busy: she holds none).
    await ana.http.put("/api/v1/agents/me/availability", json={"availability": "online"})
    await customer_writes(server, "16505553099", "Another one")

    async def fifth() -> int | None:
        convs = await conversations(server)
        return convs[4].assignee_id if len(convs) == 5 else None

    assert await wait_for(fifth) == ana.id
    bad = await ana.http.put("/api/v1/agents/me/availability", json={"availability": "busy"})
    assert bad.status_code == 422
    other = await ana.http.put(
        f"/api/v1/agents/{bo.id}/availability", json={"availability": "away"}
    )
    assert other.status_code == 403


async def test_concurrent_take_never_double_assigns(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    agents = [await make_agent(server, owner, api, n) for n in ("Ana", "Bo", "Cy", "Di")]
    await set_members(api, owner.inbox_id, [a.id for a in agents])
    await api.put(f"/api/v1/inboxes/{owner.inbox_id}/assignment", json={"mode": "manual"})
    for n in range(6):
        await customer_writes(server, f"1650555400{n}", f"Queue {n}")

    async def six() -> list | None:
        convs = await conversations(server)
        return convs if len(convs) == 6 else None

    convs = await wait_for(six)
    assert all(c.assignee_id is None for c in convs)  # manual: nobody is assigned
    assert (await api.get(f"/api/v1/inboxes/{owner.inbox_id}/queue")).json()["waiting"] == 6

    # Ten takes at once from four agents, for six waiting conversations.
    calls = [
        agents[i % 4].http.post(f"/api/v1/inboxes/{owner.inbox_id}/queue/take") for i in range(10)
    ]
    answers = await asyncio.gather(*calls)
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    taken = [r.json()["conversation"] for r in answers if r.json()["conversation"]]
    assert len(taken) == 6
    assert len({c["id"] for c in taken}) == 6
    after = await conversations(server)
    assert all(c.assignee_id is not None for c in after)
    # The taker is the assignee: each answer matches what is stored.
    by_id = {c.id: c.assignee_id for c in after}
    for r, i in zip(answers, range(10), strict=True):
        c = r.json()["conversation"]
        if c is not None:
            assert by_id[c["id"]] == agents[i % 4].id == c["assignee_id"]
    empty = await agents[0].http.post(f"/api/v1/inboxes/{owner.inbox_id}/queue/take")
    assert empty.json() == {"conversation": None}


async def test_take_respects_capacity_and_membership(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    ana = await make_agent(server, owner, api, "Ana")
    outsider = await make_agent(server, owner, api, "Out")
    await set_members(api, owner.inbox_id, [ana.id])
    await api.put(
        f"/api/v1/inboxes/{owner.inbox_id}/assignment",
        json={"mode": "manual", "agent_capacities": {str(ana.id): 1}},
    )
    for n in range(2):
        await customer_writes(server, f"1650555500{n}", f"Queue {n}")

    async def two() -> list | None:
        convs = await conversations(server)
        return convs if len(convs) == 2 else None

    await wait_for(two)
    first = await ana.http.post(f"/api/v1/inboxes/{owner.inbox_id}/queue/take")
    assert first.json()["conversation"]["assignee_id"] == ana.id
    full = await ana.http.post(f"/api/v1/inboxes/{owner.inbox_id}/queue/take")
    assert full.status_code == 409 and full.json()["error"]["code"] == "at_capacity"
    hidden = await outsider.http.post(f"/api/v1/inboxes/{owner.inbox_id}/queue/take")
    assert hidden.status_code == 404
    assert [c.assignee_id for c in await conversations(server)].count(None) == 1


async def test_queue_drains_when_an_agent_comes_online_and_on_unassigned_reopen(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    ana = await make_agent(server, owner, api, "Ana")
    await set_members(api, owner.inbox_id, [ana.id])
    await ana.http.put("/api/v1/agents/me/availability", json={"availability": "away"})
    await api.put(f"/api/v1/inboxes/{owner.inbox_id}/assignment", json={"mode": "round_robin"})
    await customer_writes(server, "16505556001", "Nobody online?")

    async def one() -> list | None:
        convs = await conversations(server)
        return convs if len(convs) == 1 else None

    conv = (await wait_for(one))[0]
    # Away: she keeps what she has but gets nothing new; the conversation waits.
    assert (await api.get(f"/api/v1/inboxes/{owner.inbox_id}/queue")).json()["waiting"] == 1
    assert (await conversations(server))[0].assignee_id is None

    await ana.http.put("/api/v1/agents/me/availability", json={"availability": "online"})

    async def assigned() -> int | None:
        return (await conversations(server))[0].assignee_id

    assert await wait_for(assigned) == ana.id

    # Resolved, then reopened without an assignee: assigned again.
    await ana.http.patch(f"/api/v1/conversations/{conv.id}", json={"status": "resolved"})
    reopened = await api.patch(
        f"/api/v1/conversations/{conv.id}", json={"status": "open", "assignee_id": None}
    )
    assert reopened.status_code == 200 and reopened.json()["assignee_id"] is None
    assert await wait_for(assigned) == ana.id
    lines = [
        m["body"]
        for m in (await api.get(f"/api/v1/conversations/{conv.id}/messages")).json()["data"]
        if m["kind"] == "system"
    ]
    # The reopen that unassigned it says so too (every assignment change writes its line).
    assert lines == [
        "Assigned to Ana (round robin)",
        "owner unassigned this",
        "Assigned to Ana (round robin)",
    ]
