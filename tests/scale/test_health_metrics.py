"""Operations endpoints: liveness, readiness, Prometheus metrics that move with traffic."""

from __future__ import annotations

import httpx

from tests.conftest import Owner, Server, eventually
from tests.core.test_ingest import api_channel, msg, post_signed


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == (f"{name}{{{want}}}" if want else name):
            return float(value)
    return 0.0


async def test_health_ready_and_metrics(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["database"] == "ok"
        before = (await client.get("/metrics")).text

        channel_id = await api_channel(api)
        await post_signed(server, channel_id, {"messages": [msg("m-1", "u", "hi", 1_750_000_000)]})
        forged = await client.post(f"{server.url}/webhooks/api/{channel_id}", content=b"{}")
        assert forged.status_code == 401

        async def processed() -> str | None:
            text = (await client.get("/metrics")).text
            # Counters are per process, and this test process ran other servers before.
            done = metric(text, "tidings_ingest_events_total", outcome="done")
            done -= metric(before, "tidings_ingest_events_total", outcome="done")
            drained = metric(text, "tidings_queue_depth", queue="inbound") == 0
            return text if done >= 1 and drained else None

        after = await eventually(processed)
    stored = metric(after, "tidings_webhook_requests_total", kind="api", outcome="stored")
    assert (
        stored - metric(before, "tidings_webhook_requests_total", kind="api", outcome="stored") == 1
    )
    bad = metric(after, "tidings_webhook_requests_total", kind="api", outcome="bad_signature")
    assert (
        bad - metric(before, "tidings_webhook_requests_total", kind="api", outcome="bad_signature")
        == 1
    )
    assert metric(after, "tidings_queue_depth", queue="inbound") == 0
    assert "tidings_queue_oldest_age_seconds" in after
    assert "tidings_sse_clients" in after
