"""Scale-out on one PostgreSQL and one Redis: 2 web + 2 worker processes.

A webhook taken by web process A reaches an agent connected to web process B live; replies
queued through both web processes are sent by the two workers with no delivery sent twice;
killing one worker mid-send loses nothing (its claims come back after the lease)."""

from __future__ import annotations

import asyncio
import collections
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    PG_URL,
    REDIS_URL,
    TIDINGS,
    connect_whatsapp,
    eventually,
    free_port,
    migrate_and_bootstrap,
    start_tidings,
    tidings_env,
)
from tests.core.test_live import sse_events
from tidings.simulators.whatsapp import WhatsAppSimulator

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not PG_URL or REDIS_URL is None, reason="multi-process needs PostgreSQL and Redis"
    ),
]
PNID = "100000000000555"
SECRET = "multi-process-app-secret"


async def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [TIDINGS, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def test_two_web_two_workers(
    database_url: str, tmp_path: Path, simulator: tuple[WhatsAppSimulator, str]
) -> None:
    _sim, sim_url = simulator
    assert REDIS_URL is not None
    port_a, port_b = free_port(), free_port()
    common = {"TIDINGS_REDIS_URL": REDIS_URL, "TIDINGS_DELIVERY_LEASE_SECONDS": "3"}
    env_a = {
        **tidings_env(database_url, tmp_path / "a", port_a),
        **common,
        "TIDINGS_RUN_WORKERS": "0",
    }
    env_b = {
        **tidings_env(database_url, tmp_path / "b", port_b),
        **common,
        "TIDINGS_RUN_WORKERS": "0",
    }
    env_w = {**tidings_env(database_url, tmp_path / "w", port_a), **common}
    headers = {"Authorization": f"Bearer {migrate_and_bootstrap(env_a)}"}
    procs = [
        await start_tidings(env_a),
        await start_tidings(env_b),
        await start_worker(env_w),
        await start_worker(env_w),
    ]
    try:
        api_a = httpx.AsyncClient(base_url=env_a["TIDINGS_PUBLIC_URL"], headers=headers, timeout=30)
        api_b = httpx.AsyncClient(base_url=env_b["TIDINGS_PUBLIC_URL"], headers=headers, timeout=30)
        control = httpx.AsyncClient(base_url=sim_url, timeout=60)
        await connect_whatsapp(api_a, control, sim_url, PNID, SECRET)
        await control.post(
            "/_sim/config", json={"pair_rate_limit": False, "auto_statuses": ["sent"]}
        )

        # 1. Webhook into A, agent on B sees it live.
        reader = asyncio.create_task(
            sse_events(api_b, "/api/v1/events", headers, want=2, timeout=20)
        )
        await asyncio.sleep(0.5)
        await control.post(
            "/_sim/inbound",
            json={"phone_number_id": PNID, "from": "4915100000001", "text": "hello A"},
        )
        events = await reader
        assert [e["event"] for e in events] == ["conversation.created", "message.created"]
        assert events[1]["data"]["body"] == "hello A"

        # More customers so replies spread over conversations (sends within one are serial).
        for i in range(2, 11):
            await control.post(
                "/_sim/inbound",
                json={"phone_number_id": PNID, "from": f"49151000000{i:02d}", "text": "hi"},
            )

        async def ten_conversations() -> list:
            data = (await api_a.get("/api/v1/conversations", params={"limit": 50})).json()["data"]
            return data if len(data) == 10 else []

        convs = await eventually(ten_conversations, timeout=20)

        # 2. Replies through both web processes; two workers compete for them.
        async def reply(n: int) -> int:
            client = api_a if n % 2 else api_b
            r = await client.post(
                f"/api/v1/conversations/{convs[n % 10]['id']}/messages", json={"text": f"reply {n}"}
            )
            assert r.status_code == 201, r.text
            return int(r.json()["id"])

        first = await asyncio.gather(*(reply(n) for n in range(60)))

        async def sent_ids() -> collections.Counter[str]:
            sent = (await control.get("/_sim/sent", params={"phone_number_id": PNID})).json()
            return collections.Counter(
                s["body"].get("biz_opaque_callback_data")
                for s in sent
                if s["response"]["status"] == 200
            )

        async def all_first_sent() -> bool:
            counts = await sent_ids()
            return all(counts[str(i)] >= 1 for i in first)

        await eventually(all_first_sent, timeout=60)
        counts = await sent_ids()
        assert all(counts[str(i)] == 1 for i in first), "a delivery was sent twice"

        # 3. Kill one worker while a second wave is being sent: nothing is lost.
        await control.post(
            "/_sim/fail", json={"count": 1000, "http_status": 200, "delay_seconds": 0.05}
        )
        second = await asyncio.gather(*(reply(n) for n in range(60, 120)))
        await asyncio.sleep(0.3)
        procs[2].send_signal(signal.SIGKILL)
        procs[2].wait()

        async def all_second_sent() -> bool:
            counts = await sent_ids()
            return all(counts[str(i)] >= 1 for i in second)

        await eventually(all_second_sent, timeout=60)
        counts = await sent_ids()
        doubled = [i for i in second if counts[str(i)] > 1]
        # Only a send that was in flight at the kill may go twice (at-least-once at the
        # provider boundary); the worker holds at most its concurrency in flight.
        assert len(doubled) <= 32, doubled
        for client in (api_a, api_b, control):
            await client.aclose()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
