"""Campaign test helpers: the campaign and fallback loops on the test server (unless the app
already runs them), API-channel customers, and small polling helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests import factories
from tests.conftest import Server, eventually, sandbox_headers
from tidings.campaigns import fanout
from tidings.delivery import fallback
from tidings.workers import registry as workers

SECRET = "s3cret-for-the-api-channel"


@pytest.fixture
async def campaign_workers(server: Server) -> AsyncIterator[None]:
    rt = server.runtime
    tasks = []
    if "campaigns" not in workers.WORKERS:
        tasks.append(rt.spawn(fanout.run(rt), name="test-campaigns"))
    if "fallback" not in workers.WORKERS:
        tasks.append(rt.spawn(fallback.run(rt), name="test-fallback"))
    yield
    for t in tasks:
        t.cancel()


async def api_channel(api: httpx.AsyncClient, server: Server, account: str = "acme") -> dict:
    return await factories.api_channel(api, secret=SECRET, server=server, account=account)


async def api_customers(
    api: httpx.AsyncClient, server: Server, n: int, account: str = "acme"
) -> list[int]:
    """n customers who wrote once on the API channel; returns their contact ids."""
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/api"
    ) as sim:
        for i in range(n):
            r = await sim.post(
                "/_sim/inbound",
                json={"account": account, "from": f"cust-{i}", "name": f"Cust {i}", "text": "hi"},
            )
            assert r.json()["status"] == 200

    async def contacts() -> list[int] | None:
        data = (await api.get("/api/v1/contacts", params={"limit": 200})).json()["data"]
        return [c["id"] for c in data] if len(data) >= n else None

    return sorted(await eventually(contacts, timeout=30))


async def wait_state(
    api: httpx.AsyncClient, campaign_id: int, state: str, timeout: float = 30
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        c = (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()
        return c if c["state"] == state else None

    result: dict[str, Any] = await eventually(check, timeout=timeout)
    return result


async def wait_counts(
    api: httpx.AsyncClient, campaign_id: int, timeout: float = 30, **expected: int
) -> dict[str, int]:
    async def check() -> dict[str, int] | None:
        counts = (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()["counts"]
        return counts if all(counts.get(k) == v for k, v in expected.items()) else None

    result: dict[str, int] = await eventually(check, timeout=timeout)
    return result
