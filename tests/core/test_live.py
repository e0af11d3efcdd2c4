"""Live events over SSE: delivered after commit, resumable with Last-Event-ID, filtered by
access, and shared across processes through Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import REDIS_URL, Owner, Server, free_port, make_settings, start_server
from tests.core.test_ingest import api_channel, msg, post_signed
from tidings.actions.admin import hash_token
from tidings.storage.models import Agent, ApiToken, Inbox, InboxMember
from tidings.storage.types import utcnow


async def sse_events(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], want: int, timeout: float = 10.0
) -> list[dict]:
    """Read `want` events from an SSE stream (id, event, data)."""
    events: list[dict] = []

    async def read() -> None:
        async with client.stream("GET", url, headers=headers) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            current: dict = {}
            async for line in resp.aiter_lines():
                if line == "":
                    if "event" in current:
                        events.append(current)
                        if len(events) >= want:
                            return
                    current = {}
                elif line.startswith(":"):
                    continue
                else:
                    field, _, value = line.partition(": ")
                    current[field] = orjson.loads(value) if field == "data" else value

    await asyncio.wait_for(read(), timeout)
    return events


async def test_webhook_reaches_the_stream_live(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel_id = await api_channel(api)
    headers = {"Authorization": f"Bearer {owner.token}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        reader = asyncio.create_task(sse_events(client, "/api/v1/events", headers, want=2))
        await asyncio.sleep(0.3)
        await post_signed(
            server,
            channel_id,
            {"messages": [msg("live-1", "zoe", "are you there?", 1_750_000_000)]},
        )
        events = await reader
    assert [e["event"] for e in events] == ["conversation.created", "message.created"]
    assert events[1]["data"]["body"] == "are you there?"
    assert events[0]["id"] != events[1]["id"]

    # Resume: everything after the first event id is replayed to a reconnecting client.
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        replayed = await sse_events(
            client, "/api/v1/events", {**headers, "Last-Event-ID": events[0]["id"]}, want=1
        )
    assert replayed[0]["event"] == "message.created"
    assert replayed[0]["id"] == events[1]["id"]


async def test_agents_only_see_their_inboxes(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel_id = await api_channel(api)
    rt = server.runtime
    async with rt.db.write() as s:
        other_inbox = Inbox(workspace_id=owner.workspace_id, name="Sales", created_at=utcnow())
        agent = Agent(
            workspace_id=owner.workspace_id,
            email="agent@example.com",
            name="Agent",
            role="agent",
            created_at=utcnow(),
        )
        s.add_all([other_inbox, agent])
        await s.flush()
        s.add(InboxMember(inbox_id=other_inbox.id, agent_id=agent.id))
        s.add(
            ApiToken(
                workspace_id=owner.workspace_id,
                agent_id=agent.id,
                name="t",
                token_hash=hash_token("tid_agent"),
                created_at=utcnow(),
            )
        )
    agent_headers = {"Authorization": "Bearer tid_agent"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        reader = asyncio.create_task(
            sse_events(client, "/api/v1/events", agent_headers, want=1, timeout=2.0)
        )
        await asyncio.sleep(0.3)
        await post_signed(
            server, channel_id, {"messages": [msg("secret-1", "bob", "private", 1_750_000_000)]}
        )
        with pytest.raises(TimeoutError):
            await reader  # the message is in the Support inbox: this agent never hears of it
        convs = (await client.get("/api/v1/conversations", headers=agent_headers)).json()["data"]
        assert convs == []
        owner_convs = (await api.get("/api/v1/conversations")).json()["data"]
        assert len(owner_convs) == 1
        denied = await client.get(
            f"/api/v1/conversations/{owner_convs[0]['id']}", headers=agent_headers
        )
        assert denied.status_code == 404
        reply = await client.post(
            f"/api/v1/conversations/{owner_convs[0]['id']}/messages",
            json={"text": "hi"},
            headers=agent_headers,
        )
        assert reply.status_code == 404


@pytest.mark.skipif(
    REDIS_URL is None, reason="needs TIDINGS_TEST_REDIS_URL (scripts/check starts Redis)"
)
async def test_event_crosses_processes_through_redis(database_url: str, tmp_path: Path) -> None:
    """Two web servers on one database and one Redis: a webhook taken by A reaches a client of B."""
    from tidings.actions.admin import bootstrap

    assert REDIS_URL is not None
    a_settings = make_settings(database_url, tmp_path / "a", free_port(), redis_url=REDIS_URL)
    b_settings = make_settings(
        database_url, tmp_path / "b", free_port(), redis_url=REDIS_URL, run_workers=False
    )
    a, a_uv, a_task = await start_server(a_settings)
    b, b_uv, b_task = await start_server(b_settings)
    try:
        boot = await bootstrap(a.runtime, "o@example.com", "pw-pw-pw-pw", "X")
        headers = {"Authorization": f"Bearer {boot['api_token']}"}
        async with httpx.AsyncClient(base_url=a.url, headers=headers) as api_a:
            channel_id = await api_channel(api_a)
        async with httpx.AsyncClient(base_url=b.url, timeout=30) as client_b:
            reader = asyncio.create_task(sse_events(client_b, "/api/v1/events", headers, want=2))
            await asyncio.sleep(0.5)
            await post_signed(
                a, channel_id, {"messages": [msg("x-1", "cy", "via A", 1_750_000_000)]}
            )
            events = await reader
        assert [e["event"] for e in events] == ["conversation.created", "message.created"]
        assert events[1]["data"]["body"] == "via A"
    finally:
        for uv in (a_uv, b_uv):
            uv.should_exit = True
        await asyncio.wait_for(asyncio.gather(a_task, b_task), 15)
