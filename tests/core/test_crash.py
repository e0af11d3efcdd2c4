"""kill -9 under webhook load: the simulator retries what was not acknowledged, and in the end
every message is stored exactly once. Tidings runs as a real `tidings serve` process; the
WhatsApp simulator runs beside it, like Meta would."""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import subprocess
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import (
    TIDINGS,
    connect_whatsapp,
    eventually,
    free_port,
    migrate_and_bootstrap,
    start_tidings,
    tidings_env,
)
from tidings.simulators.whatsapp import WhatsAppSimulator

pytestmark = pytest.mark.slow
PNID = "100000000000777"
SECRET = "crash-test-app-secret"


async def test_kill_9_under_load_loses_and_doubles_nothing(
    database_url: str, tmp_path: Path, simulator: tuple[WhatsAppSimulator, str]
) -> None:
    _sim, sim_url = simulator
    port = free_port()
    env = tidings_env(database_url, tmp_path / "data", port)
    boot = subprocess.run(
        [TIDINGS, "bootstrap", "--email", "ops@example.com", "--password", "pw-pw-pw-pw"],
        env=env,
        capture_output=True,
        check=True,
    )
    token = json.loads(boot.stdout)["api_token"]
    # bootstrap is idempotent and says so.
    again = json.loads(
        subprocess.run(
            [TIDINGS, "bootstrap", "--email", "x@example.com", "--password", "x"],
            env=env,
            capture_output=True,
            check=True,
        ).stdout
    )
    assert again["created"] is False and "api_token" not in again

    proc = await start_tidings(env)
    try:
        async with (
            httpx.AsyncClient(
                base_url=env["TIDINGS_PUBLIC_URL"], headers={"Authorization": f"Bearer {token}"}
            ) as api,
            httpx.AsyncClient(base_url=sim_url, timeout=120) as control,
        ):
            await connect_whatsapp(api, control, sim_url, PNID, SECRET)
            await control.post(
                "/_sim/config",
                json={
                    "retry_schedule": [0.2, 0.5, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0],
                    "retry_for_seconds": 120,
                },
            )

            total = 300

            async def customer(i: int) -> None:
                # Paced over ~1.5 s so that the kill at 0.4 s always lands mid-load: messages
                # sent after it must be retried by the provider (a burst could be fully
                # acknowledged before the kill on a fast run).
                await asyncio.sleep(i * 0.005)
                await control.post(
                    "/_sim/inbound",
                    json={
                        "phone_number_id": PNID,
                        "from": f"4915100{i % 40:05d}",
                        "text": f"msg {i}",
                    },
                )

            senders = [asyncio.create_task(customer(i)) for i in range(total)]
            await asyncio.sleep(0.4)
            proc.send_signal(signal.SIGKILL)  # mid-load, no goodbye
            proc.wait()
            await asyncio.gather(*senders)
            await asyncio.sleep(0.5)
            proc = await start_tidings(env)
            flushed = (await control.post("/_sim/flush", params={"timeout": 90})).json()
            assert flushed["pending"] == 0 and flushed["given_up"] == 0, flushed
            deliveries = (await control.get("/_sim/deliveries")).json()
            retried = [d for d in deliveries if d["kind"] == "message" and d["attempts"] > 1]
            # The kill really landed mid-load: some webhooks were not acknowledged and retried.
            assert retried, "no webhook needed a retry: the kill missed the load"
            wamids = {
                m["id"]
                for m in (
                    await control.get("/_sim/conversations", params={"phone_number_id": PNID})
                ).json()
                if m["direction"] == "in"
            }
        assert len(wamids) == total

        engine = create_async_engine(database_url)

        async def stored() -> int:
            async with engine.connect() as conn:
                from tidings.storage.models import Message

                return int(await conn.scalar(select(func.count()).select_from(Message)) or 0)

        try:
            await eventually(lambda: _equals(stored(), total), timeout=60, interval=0.2)
            async with engine.connect() as conn:
                from tidings.storage.models import Message

                ids = (await conn.execute(select(Message.provider_message_id))).scalars().all()
        finally:
            await engine.dispose()
        assert len(ids) == len(set(ids)) == total  # nothing doubled
        assert set(ids) == wamids  # nothing lost
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=15)


async def _equals(coro: object, expected: int) -> bool:
    return await coro == expected  # type: ignore[misc]


async def test_kill_9_mid_batch_in_each_lane_loses_and_doubles_nothing(
    database_url: str, tmp_path: Path
) -> None:
    """A worker per lane (`TIDINGS_WORKERS=ingest-customer`, then `ingest-status`), killed with
    -9 while its lane has a backlog: its open claim rolls back, the restarted worker applies
    the rest, and every event is applied exactly once — a customer lane worker never touches
    receipts, nor a status lane worker customers' messages."""
    from tests.core.test_ingest import SECRET as API_SECRET
    from tests.core.test_ingest import api_channel, msg
    from tidings import signing
    from tidings.storage.models import Contact, Conversation, InboundEvent, Message

    port = free_port()
    web_env = {**tidings_env(database_url, tmp_path / "web", port), "TIDINGS_RUN_WORKERS": "0"}
    token = migrate_and_bootstrap(web_env)
    web = await start_tidings(web_env)
    engine = create_async_engine(database_url)
    workers: list[subprocess.Popen[bytes]] = []
    customers, senders, receipts = 400, 40, 600

    def start_worker(name: str) -> subprocess.Popen[bytes]:
        env = {**tidings_env(database_url, tmp_path / name, port), "TIDINGS_WORKERS": name}
        with (tmp_path / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [TIDINGS, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=log
            )
        workers.append(proc)
        return proc

    async def lane_states(lane: str) -> collections.Counter[tuple[str, int]]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(InboundEvent.state, InboundEvent.attempts, func.count())
                .where(InboundEvent.lane == lane)
                .group_by(InboundEvent.state, InboundEvent.attempts)
            )
            return collections.Counter({(str(s), int(a)): int(n) for s, a, n in rows})

    async def done(lane: str) -> int:
        return sum(n for (state, _a), n in (await lane_states(lane)).items() if state == "done")

    async def kill_mid_batch(lane: str, total: int) -> int:
        proc = start_worker(f"ingest-{lane}")
        await eventually(lambda: _at_least(done(lane), 10), timeout=120, interval=0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        at_kill = await done(lane)
        assert at_kill < total, "the lane drained before the kill; nothing was mid-batch"
        proc = start_worker(f"ingest-{lane}")
        await eventually(lambda: _equals(done(lane), total), timeout=240, interval=0.2)
        proc.terminate()
        proc.wait(timeout=15)
        # Applied exactly once: every event done after a single attempt (a claim that died
        # with the worker rolled back, attempts included).
        assert await lane_states(lane) == {("done", 1): total}
        return at_kill

    async def count(model: type, *where: object) -> int:
        async with engine.connect() as conn:
            stmt = select(func.count()).select_from(model).where(*where)  # type: ignore[arg-type]
            return int(await conn.scalar(stmt) or 0)

    try:
        async with httpx.AsyncClient(
            base_url=web_env["TIDINGS_PUBLIC_URL"],
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        ) as api:
            channel_id = await api_channel(api)

            async def post(doc: dict[str, object]) -> None:
                body = orjson.dumps(doc)
                resp = await api.post(
                    f"/webhooks/api/{channel_id}",
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        **signing.sign_headers(API_SECRET, body),
                    },
                )
                assert resp.status_code == 200, resp.text

            for start in range(0, customers, 100):
                await post(
                    {
                        "messages": [
                            msg(f"m{i}", f"user{i % senders}", f"hello {i}", 1_750_000_000 + i)
                            for i in range(start, start + 100)
                        ]
                    }
                )
            for start in range(0, receipts, 200):
                await post(
                    {
                        "statuses": [
                            {"id": f"out-{i}", "status": "delivered", "timestamp": 1_750_000_000}
                            for i in range(start, start + 200)
                        ]
                    }
                )

        # Customer lane: killed mid-batch, restarted; the receipts wait untouched meanwhile.
        await kill_mid_batch("customer", customers)
        assert await lane_states("status") == {("pending", 0): receipts}
        assert await count(Message) == customers  # nothing lost, nothing doubled
        async with engine.connect() as conn:
            ids = (await conn.execute(select(Message.provider_message_id))).scalars().all()
        assert len(set(ids)) == customers
        assert await count(Contact) == senders  # no contact made twice by a retried claim
        assert await count(Conversation) == senders

        # Status lane: our broadcast's messages, then its receipts, killed mid-batch.
        async with engine.begin() as conn:
            conv = (await conn.execute(select(Conversation).limit(1))).one()
            await conn.execute(
                Message.__table__.insert(),
                [
                    {
                        "workspace_id": conv.workspace_id,
                        "conversation_id": conv.id,
                        "channel_id": channel_id,
                        "direction": "out",
                        "kind": "text",
                        "body": f"broadcast {i}",
                        "provider_message_id": f"out-{i}",
                        "status": "sent",
                        "extra": {},
                    }
                    for i in range(receipts)
                ],
            )
        await kill_mid_batch("status", receipts)
        assert await count(Message, Message.status == "delivered") == receipts
        assert await lane_states("customer") == {("done", 1): customers}
    finally:
        for proc in [*workers, web]:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=15)
        await engine.dispose()


async def _at_least(coro: object, expected: int) -> bool:
    return await coro >= expected  # type: ignore[operator]
