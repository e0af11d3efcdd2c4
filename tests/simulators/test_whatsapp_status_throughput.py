"""The WhatsApp simulator under a campaign's status load: a slow receiver gets every status,
none given up, with POSTs and pending statuses bounded by the knobs; batching puts several
statuses in one POST. Counts are asserted, never timings."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.simulators.test_whatsapp_simulator import free_port
from tidings.channels.base import WebhookRequest
from tidings.channels.whatsapp import WhatsAppAdapter, WhatsAppConfig
from tidings.domain.events import StatusUpdate
from tidings.simulators.whatsapp import AccountIn, WhatsAppSimulator

PNID = "106540352242922"
TOKEN = "EAAG-sim-token"
SECRET = "s3cret"
adapter = WhatsAppAdapter()
config = WhatsAppConfig(
    phone_number_id=PNID, access_token=TOKEN, app_secret=SECRET, verify_token="vt-1"
)


class SlowReceiver:
    """Answers 200 after `delay` seconds (500 to the first `fail_first` POSTs) and notes the
    most POSTs it saw at once and the most statuses the simulator had pending."""

    def __init__(self, sim: WhatsAppSimulator, delay: float, fail_first: int = 0) -> None:
        self.sim = sim
        self.delay = delay
        self.fail_first = fail_first
        self.bodies: list[bytes] = []
        self.in_flight = self.max_in_flight = self.max_backlog = 0
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.max_backlog = max(self.max_backlog, self.sim._status_backlog)
        try:
            body = await request.body()
            await asyncio.sleep(self.delay)
            if self.fail_first > 0:
                self.fail_first -= 1
                return Response(status_code=500)
            self.bodies.append(body)
            return Response(status_code=200)
        finally:
            self.in_flight -= 1

    def statuses(self) -> list[StatusUpdate]:
        out = []
        for body in self.bodies:
            wr = WebhookRequest("POST", "http://x/hook", {}, {}, body)
            for piece in adapter.split(config, wr):
                out += [e for e in adapter.parse(config, piece.payload)]
        return [e for e in out if isinstance(e, StatusUpdate)]


@pytest.fixture
async def rig() -> AsyncIterator[tuple[WhatsAppSimulator, SlowReceiver, httpx.AsyncClient]]:
    sim = WhatsAppSimulator()
    sim.configure(
        status_delay=0.0,
        retry_schedule=[0.05],
        throughput_per_second=100_000,
        pair_rate_limit=False,
        enforce_window=False,
    )
    receiver = SlowReceiver(sim, delay=0.01)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            receiver.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    await sim.register_account(
        PNID,
        AccountIn(
            access_token=TOKEN,
            app_secret=SECRET,
            verify_token="vt-1",
            webhook_url=f"http://127.0.0.1:{port}/hook",
        ),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app), base_url="http://sim", timeout=120
    ) as graph:
        yield sim, receiver, graph
    await sim.aclose()
    server.should_exit = True
    await asyncio.wait_for(task, 10)


async def campaign(graph: httpx.AsyncClient, count: int, senders: int = 20) -> list[str]:
    """`count` sends from `senders` concurrent loops, as a campaign's sender would; returns
    the wamids (every send must be accepted, however long backpressure holds it)."""
    wamids: list[str] = []

    async def loop(offset: int) -> None:
        for i in range(offset, count, senders):
            body: dict[str, Any] = {
                "messaging_product": "whatsapp",
                "to": f"1555{i:07d}",
                "type": "text",
                "text": {"body": f"offer {i}"},
            }
            resp = await graph.post(
                f"/v25.0/{PNID}/messages",
                content=orjson.dumps(body),
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            )
            assert resp.status_code == 200, resp.text
            wamids.append(resp.json()["messages"][0]["id"])

    await asyncio.gather(*(loop(i) for i in range(senders)))
    return wamids


async def test_slow_receiver_gets_every_status_with_bounded_pending(
    rig: tuple[WhatsAppSimulator, SlowReceiver, httpx.AsyncClient],
) -> None:
    sim, receiver, graph = rig
    # 1,000 sends x (sent, delivered) = 2,000 status webhooks; the receiver takes 10 ms each
    # and refuses the first 30 (retried). At most 16 POSTs in flight, at most 100 statuses
    # pending: the sends wait for room instead.
    sim.configure(
        auto_statuses=["sent", "delivered"],
        webhook_concurrency=16,
        status_backlog_limit=100,
        history_limit=5_000,
    )
    receiver.fail_first = 30
    wamids = await campaign(graph, 1_000)
    counts = await sim.flush(120)

    assert counts == {"delivered": 2_000, "pending": 0, "given_up": 0}
    assert sum(d.attempts for d in sim.deliveries) == 2_030  # 30 refused, then retried
    statuses = receiver.statuses()
    assert len(statuses) == 2_000
    assert Counter((s.provider_message_id, s.status.value) for s in statuses) == Counter(
        {(w, st): 1 for w in wamids for st in ("sent", "delivered")}
    )
    assert receiver.max_in_flight <= 16
    # New sends wait at the limit; a status already admitted may still go into retry, so
    # the refused ones may briefly come on top of it.
    assert receiver.max_backlog <= 100 + 30
    assert sim._status_queue.qsize() == 0


async def test_batching_puts_several_statuses_in_one_post(
    rig: tuple[WhatsAppSimulator, SlowReceiver, httpx.AsyncClient],
) -> None:
    sim, receiver, graph = rig
    sim.configure(
        auto_statuses=["sent", "delivered", "read"],
        status_batch=25,
        status_batch_ms=50,
        webhook_concurrency=4,
    )
    wamids = await campaign(graph, 200)
    assert (await sim.flush(60))["given_up"] == 0

    sizes = [
        len(orjson.loads(b)["entry"][0]["changes"][0]["value"]["statuses"]) for b in receiver.bodies
    ]
    assert sum(sizes) == 600
    assert max(sizes) <= 25
    assert len(receiver.bodies) < 600 / 2  # batched: far fewer POSTs than statuses
    statuses = receiver.statuses()
    assert Counter((s.provider_message_id, s.status.value) for s in statuses) == Counter(
        {(w, st): 1 for w in wamids for st in ("sent", "delivered", "read")}
    )
    # Each message's statuses still arrive in order, batched or not.
    seen: dict[str, list[str]] = {}
    for s in statuses:
        seen.setdefault(s.provider_message_id, []).append(s.status.value)
    assert all(v == ["sent", "delivered", "read"] for v in seen.values())


async def test_batching_off_is_one_status_per_post(
    rig: tuple[WhatsAppSimulator, SlowReceiver, httpx.AsyncClient],
) -> None:
    sim, receiver, graph = rig
    sim.configure(auto_statuses=["sent"])
    await campaign(graph, 50)
    await sim.flush(30)
    assert len(receiver.bodies) == 50
    assert all(
        len(orjson.loads(b)["entry"][0]["changes"][0]["value"]["statuses"]) == 1
        for b in receiver.bodies
    )
