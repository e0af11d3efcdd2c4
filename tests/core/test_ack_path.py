"""The acknowledgement path (issue 14, item 4): webhooks go ahead of processing for SQLite's
single writer, and the webhook fast path answers like the FastAPI stack did."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
from sqlalchemy import func, select, text

from tests.conftest import Owner, Server
from tests.core.test_ingest import api_channel, msg, post_signed
from tidings.domain.enums import InboundLane, InboundState
from tidings.storage.db import TurnLock
from tidings.storage.models import InboundEvent
from tidings.storage.types import utcnow


async def test_turn_lock_serves_first_waiters_before_the_others() -> None:
    lock = TurnLock()
    order: list[str] = []
    await lock.acquire()

    async def take(name: str, first: bool) -> None:
        await lock.acquire(first=first)
        order.append(name)
        lock.release()

    tasks = [
        asyncio.create_task(take("worker-1", False)),
        asyncio.create_task(take("worker-2", False)),
        asyncio.create_task(take("ack-1", True)),
        asyncio.create_task(take("ack-2", True)),
    ]
    while lock.waiting(first=False) + lock.waiting(first=True) < 4:
        await asyncio.sleep(0)
    lock.release()
    await asyncio.gather(*tasks)
    assert order == ["ack-1", "ack-2", "worker-1", "worker-2"]
    assert not lock.locked


async def test_turn_lock_survives_a_cancelled_waiter() -> None:
    lock = TurnLock()
    await lock.acquire()
    gone = asyncio.create_task(lock.acquire(first=True))
    later = asyncio.create_task(lock.acquire())
    while lock.waiting(first=True) + lock.waiting(first=False) < 2:
        await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    lock.release()
    await later  # the lock went to the waiter still there
    assert lock.locked
    lock.release()
    assert not lock.locked


def _row(channel_id: int, workspace_id: int, key: str) -> dict[str, object]:
    now = utcnow()
    return {
        "workspace_id": workspace_id,
        "channel_id": channel_id,
        "event_key": key,
        "payload": b"{}",
        "occurred_at": now,
        "received_at": now,
        "state": InboundState.FAILED,  # never picked up by the worker
        "attempts": 0,
        "next_attempt_at": now,
        "error": "test row",
        "lane": InboundLane.CUSTOMER,
    }


async def test_group_commit_goes_ahead_of_queued_writers(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """While a processing transaction holds SQLite's writer, a webhook's commit waits for it,
    but it goes before every other writer that queued meanwhile (the worker's next batch)."""
    rt = server.runtime
    if not rt.db.is_sqlite:
        pytest.skip("PostgreSQL has no single writer: nothing to take turns for")
    channel_id = await api_channel(api)
    order: list[str] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def processing() -> None:
        async with rt.db.write() as s:
            await s.execute(text("SELECT 1"))
            holding.set()
            await release.wait()
        order.append("processing")

    async def next_batch() -> None:
        async with rt.db.write() as s:
            await s.execute(text("SELECT 1"))
        order.append("next batch")

    async def webhook() -> None:
        await rt.committer.submit([_row(channel_id, owner.workspace_id, "ack-path:1")])
        order.append("ack")

    first = asyncio.create_task(processing())
    await holding.wait()
    queued = asyncio.create_task(next_batch())
    lock = rt.db._turn[1] if rt.db._turn is not None else None
    assert lock is not None
    while lock.waiting(first=False) < 1:
        await asyncio.sleep(0)
    ack = asyncio.create_task(webhook())
    while lock.waiting(first=True) < 1:
        await asyncio.sleep(0)
    assert rt.committer.waiting  # what the worker's slice checks to give the lock back
    release.set()
    await asyncio.gather(first, queued, ack)
    assert order == ["processing", "ack", "next batch"]
    async with rt.db.read() as s:
        stored = await s.scalar(select(func.count()).where(InboundEvent.event_key == "ack-path:1"))
    assert stored == 1


async def test_fast_path_answers_like_the_stack(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel_id = await api_channel(api)
    ok = await post_signed(server, channel_id, {"messages": [msg("fp1", "ann", "hi", 1)]})
    assert ok.status_code == 200
    assert ok.headers["x-content-type-options"] == "nosniff"
    assert len(ok.headers["x-request-id"]) == 16
    async with httpx.AsyncClient() as client:
        mine = await client.post(
            f"{server.url}/webhooks/api/{channel_id}",
            content=orjson.dumps({"messages": []}),
            headers={"X-Request-ID": "provider-req-42"},
        )
        assert mine.status_code == 401  # unsigned
        assert mine.headers["x-request-id"] == "provider-req-42"
        assert mine.json()["error"]["code"]
        unknown = await client.post(f"{server.url}/webhooks/api/999999", content=b"{}")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "unknown_channel"
        assert unknown.headers["x-content-type-options"] == "nosniff"
        # Not a GET/POST: still FastAPI's answer, as before.
        put = await client.put(f"{server.url}/webhooks/api/{channel_id}", content=b"{}")
        assert put.status_code == 405
        deeper = await client.post(f"{server.url}/webhooks/api/{channel_id}/x", content=b"{}")
        assert deeper.status_code == 404


async def test_a_long_write_transaction_lets_requests_be_read(server: Server) -> None:
    """Statements on the inline SQLite write connection never suspend; without a pause now and
    then, a worker batch would keep the loop from BEGIN to COMMIT and no webhook could even
    reach the committer to say it waits. Another task must get to run mid-transaction."""
    rt = server.runtime
    if not rt.db.is_sqlite:
        pytest.skip("the inline write connection is SQLite's")
    ran: list[str] = []

    async def request() -> None:
        ran.append("request")

    statements = 0
    async with rt.db.write() as s:
        task = asyncio.create_task(request())
        # Bounded: with the loop never shared this ends after 100,000 statements and fails.
        while not ran and statements < 100_000:
            await s.execute(text("SELECT 1"))
            statements += 1
        inside = bool(ran)
    await task
    assert inside, f"no other task ran during {statements} statements"


async def test_a_customer_webhook_is_committed_ahead_of_queued_receipts(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """Receipts queue for the group commit behind one in flight; a customer's webhook that
    arrives after them gets the next commit to itself, ahead of them (a broadcast's receipts
    must not hold a customer's message). Commits counted, not timed."""
    rt = server.runtime
    channel_id = await api_channel(api)
    commits = 0
    on_commit = rt.committer._on_commit

    def counted() -> None:
        nonlocal commits
        commits += 1
        on_commit()

    rt.committer._on_commit = counted
    done_at: dict[str, int] = {}

    async def webhook(key: str, lane: InboundLane) -> None:
        row = _row(channel_id, owner.workspace_id, key) | {"lane": lane}
        await rt.committer.submit([row])
        done_at[key] = commits

    holding = asyncio.Event()
    release = asyncio.Event()

    async def blocker() -> None:
        # The write lock (SQLite's one writer; on PostgreSQL the table) is taken, so the first
        # commit stays in flight while the others queue.
        async with rt.db.write() as s:
            if not rt.db.is_sqlite:
                await s.execute(text("LOCK TABLE inbound_event IN EXCLUSIVE MODE"))
            holding.set()
            await release.wait()

    held = asyncio.create_task(blocker())
    await holding.wait()
    tasks = [asyncio.create_task(webhook("receipt-0", InboundLane.STATUS))]
    while not rt.committer._in_flight:
        await asyncio.sleep(0)
    tasks += [asyncio.create_task(webhook(f"receipt-{n}", InboundLane.STATUS)) for n in (1, 2)]
    tasks.append(asyncio.create_task(webhook("customer", InboundLane.CUSTOMER)))
    for _ in range(5):
        await asyncio.sleep(0)
    release.set()
    await asyncio.gather(held, *tasks)
    assert done_at["receipt-0"] < done_at["customer"] < done_at["receipt-1"], done_at
    assert done_at["receipt-1"] == done_at["receipt-2"]  # the queued receipts: one commit
