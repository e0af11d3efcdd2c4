"""The WhatsApp simulator's webhook statistics (`GET /_sim/stats`), which the broadcast-storm
benchmark reads its acknowledgement figures from: every attempt counted under its kind and
answer, statuses delivered counted once, and DELETE starting afresh. Counts only."""

from __future__ import annotations

import httpx

from tests.simulators.test_whatsapp_status_throughput import (  # noqa: F401 (the fixture)
    PNID,
    SlowReceiver,
    campaign,
    rig,
)
from tidings.simulators.whatsapp import InboundSpec, WhatsAppSimulator


async def test_stats_count_every_attempt_by_kind_and_answer(
    rig: tuple[WhatsAppSimulator, SlowReceiver, httpx.AsyncClient],  # noqa: F811
) -> None:
    sim, receiver, graph = rig
    sim.configure(auto_statuses=["sent", "delivered"], history_limit=1_000)
    receiver.fail_first = 5  # refused with 500, then retried
    await campaign(graph, 20)
    assert (await sim.flush(60))["given_up"] == 0
    await sim.inbound(InboundSpec(phone_number_id=PNID, **{"from": "15550001"}, text="hi"))

    stats = (await graph.get("/_sim/stats")).json()
    status = stats["webhooks"]["status"]
    assert status["posts"] == 45
    assert status["ok"] == 40
    assert status["by_status"] == {"200": 40, "500": 5}
    assert status["non_2xx"] == 5
    assert status["transport_errors"] == 0
    assert status["items_delivered"] == 40
    assert status["latency"]["count"] == 45
    assert 0 < status["latency"]["p50_ms"] <= status["latency"]["p99_ms"]
    assert status["latency"]["p99_ms"] <= status["latency"]["max_ms"]
    message = stats["webhooks"]["message"]
    assert (message["posts"], message["ok"], message["items_delivered"]) == (1, 1, 1)
    assert stats["status_backlog"] == 0

    assert (await graph.delete("/_sim/stats")).json()["webhooks"] == {}
    assert (await graph.get("/_sim/stats")).json()["webhooks"] == {}
