"""A quiet SSE stream sends keepalive comments (so proxies keep it open) and still delivers the
next event after them, once, with its id."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

import tidings.api.v1 as v1
from tests.conftest import Owner, Server
from tests.core.test_ingest import api_channel, msg, post_signed


async def test_keepalives_on_a_quiet_stream_then_the_event(
    server: Server, owner: Owner, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(v1, "KEEPALIVE_SECONDS", 0.3)
    channel_id = await api_channel(api)
    lines: list[str] = []
    keepalives = asyncio.Event()

    async def read() -> None:
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=30) as client,
            client.stream(
                "GET", "/api/v1/events", headers={"Authorization": f"Bearer {owner.token}"}
            ) as resp,
        ):
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                lines.append(line)
                if lines.count(": keepalive") >= 2:
                    keepalives.set()
                if line.startswith("data: ") and lines[-2] == "event: message.created":
                    return

    reader = asyncio.create_task(read())
    await asyncio.wait_for(keepalives.wait(), 20)
    resp = await post_signed(
        server,
        channel_id,
        {"messages": [msg("k1", "quiet", "after the silence", int(time.time()))]},
    )
    assert resp.status_code == 200
    await asyncio.wait_for(reader, 20)
    events = [line for line in lines if line.startswith("event: ")]
    assert events[-1] == "event: message.created"
    assert events.count("event: message.created") == 1
    # The frame carries its id (for Last-Event-ID) and the customer's text as data.
    frame = lines[
        lines.index("event: message.created") - 1 : lines.index("event: message.created") + 2
    ]
    assert frame[0].startswith("id: ") and len(frame[0]) > 4
    assert "after the silence" in frame[2]
