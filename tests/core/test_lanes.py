"""Inbound lanes (issue 14, item 1): customer events are never queued behind receipts, retries or
replays. Each lane has its own claims; the loop drains due customer events before every status
slice; on PostgreSQL several processes share a lane through `SKIP LOCKED` without taking an
event twice.

The backlogs are real rows in `inbound_event`, stored as a webhook's `split` would store them,
on a server whose own ingest worker is not running; the tests drive the worker's rounds and
assert what each round did (order and rounds, never time)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import func, insert, select, update

from tests.conftest import Owner, Server, free_port, make_settings, serving
from tests.core.test_ingest import api_channel, msg, post_signed
from tidings.actions.admin import bootstrap
from tidings.domain.enums import InboundLane, InboundState
from tidings.ingest.worker import (
    CUSTOMER_FRESH,
    CUSTOMER_RETRIES,
    STATUS,
    Claim,
    claim_statement,
    process_claim,
    process_round,
    replay,
)
from tidings.runtime import Runtime
from tidings.storage.db import Database
from tidings.storage.models import Conversation, InboundEvent, Message
from tidings.storage.types import utcnow

T0 = 1_750_000_000  # provider timestamps of the backlog: older than anything posted later


@pytest.fixture
async def idle_server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    """A server that stores webhooks but runs no worker: the test runs the rounds."""
    settings = make_settings(database_url, tmp_path / "data", free_port(), run_workers=False)
    async with serving(settings) as srv:
        yield srv


@pytest.fixture
async def idle_api(idle_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    result = await bootstrap(idle_server.runtime, "owner@example.com", "correct horse battery", "T")
    owner = Owner(
        result["workspace_id"], result["agent_id"], result["inbox_id"], result["api_token"]
    )
    async with httpx.AsyncClient(
        base_url=idle_server.url, headers={"Authorization": f"Bearer {owner.token}"}, timeout=20
    ) as client:
        yield client


async def one_conversation(server: Server, channel_id: int) -> tuple[int, int]:
    """A customer writes once and the customer lane applies it: (workspace id, conversation id)."""
    resp = await post_signed(server, channel_id, {"messages": [msg("seed", "seed", "hi", T0)]})
    assert resp.status_code == 200, resp.text
    assert (await process_claim(server.runtime, CUSTOMER_FRESH)).handled == 1
    async with server.runtime.db.read() as s:
        conv = (await s.scalars(select(Conversation))).one()
    return conv.workspace_id, conv.id


async def outbound(
    db: Database, workspace_id: int, channel_id: int, conversation_id: int, n: int
) -> list[str]:
    """`n` sent messages of ours in a conversation; returns their provider ids."""
    ids = [f"out-{i}" for i in range(n)]
    async with db.write() as s:
        await s.execute(
            insert(Message),
            [
                {
                    "workspace_id": workspace_id,
                    "conversation_id": conversation_id,
                    "channel_id": channel_id,
                    "direction": "out",
                    "kind": "text",
                    "body": f"broadcast {i}",
                    "provider_message_id": pid,
                    "status": "sent",
                    "extra": {},
                }
                for i, pid in enumerate(ids)
            ],
        )
    return ids


async def status_backlog(
    db: Database, workspace_id: int, channel_id: int, ids: list[str], state: str = "delivered"
) -> None:
    """A receipt per provider id in the status lane, as the API channel's `split` stores it,
    due now and with provider timestamps older than any customer message in these tests."""
    now = datetime.now(UTC)
    rows = [
        {
            "workspace_id": workspace_id,
            "channel_id": channel_id,
            "event_key": f"status:{pid}:{state}",
            "payload": orjson.dumps({"status": {"id": pid, "status": state, "timestamp": T0}}),
            "occurred_at": datetime.fromtimestamp(T0 - 1000 + i % 500, UTC),
            "received_at": now,
            "next_attempt_at": now,
            "state": InboundState.PENDING,
            "attempts": 0,
            "lane": InboundLane.STATUS,
        }
        for i, pid in enumerate(ids)
    ]
    async with db.write() as s:
        for start in range(0, len(rows), 1000):
            await s.execute(insert(InboundEvent), rows[start : start + 1000])


async def events(db: Database, lane: str) -> list[InboundEvent]:
    async with db.read() as s:
        return list((await s.scalars(select(InboundEvent).where(InboundEvent.lane == lane))).all())


async def test_a_customer_message_behind_a_status_backlog_goes_in_the_first_round(
    idle_server: Server, idle_api: httpx.AsyncClient
) -> None:
    rt = idle_server.runtime
    channel_id = await api_channel(idle_api)
    workspace_id, conv_id = await one_conversation(idle_server, channel_id)
    backlog = 2_000
    ids = await outbound(rt.db, workspace_id, channel_id, conv_id, backlog)
    await status_backlog(rt.db, workspace_id, channel_id, ids)
    # The customer writes after the broadcast's receipts were stored (and its provider
    # timestamp is newer than theirs: one queue in provider order would put it last).
    resp = await post_signed(
        idle_server, channel_id, {"messages": [msg("c1", "carla", "where is my order?", T0 + 5)]}
    )
    assert resp.status_code == 200

    assert await process_round(rt) is True  # one round; the status lane is far from done
    async with rt.db.read() as s:
        bodies = (await s.scalars(select(Message.body).where(Message.direction == "in"))).all()
    assert "where is my order?" in bodies
    customer = next(e for e in await events(rt.db, "customer") if e.event_key == "msg:c1")
    assert customer.state == InboundState.DONE
    receipts = await events(rt.db, "status")
    done = [e for e in receipts if e.state == InboundState.DONE]
    # Receipts were applied in this round too, but only after the customer's message and
    # only a slice of them: the rest waits for the next rounds.
    assert customer.processed_at is not None
    assert all(e.processed_at is not None and e.processed_at >= customer.processed_at for e in done)
    assert len(done) <= STATUS.limit
    assert sum(e.state == InboundState.PENDING for e in receipts) >= backlog - STATUS.limit

    # A message arriving now, between rounds, again goes before the next slice of receipts.
    resp = await post_signed(
        idle_server, channel_id, {"messages": [msg("c2", "dino", "hello?", T0 + 6)]}
    )
    assert resp.status_code == 200
    pending_before = sum(e.state == InboundState.PENDING for e in await events(rt.db, "status"))
    await process_round(rt)
    c2 = next(e for e in await events(rt.db, "customer") if e.event_key == "msg:c2")
    assert c2.state == InboundState.DONE
    assert sum(e.state == InboundState.PENDING for e in await events(rt.db, "status")) < (
        pending_before
    )

    # Rounds drain everything: every receipt applied once, every message delivered.
    while await process_round(rt):
        pass
    receipts = await events(rt.db, "status")
    assert {e.state for e in receipts} == {InboundState.DONE}
    assert {e.attempts for e in receipts} == {1}
    async with rt.db.read() as s:
        statuses = (await s.scalars(select(Message.status).where(Message.direction == "out"))).all()
    assert len(statuses) == backlog and set(statuses) == {"delivered"}


async def test_retries_and_replays_do_not_jump_ahead_of_fresh_customer_events(
    idle_server: Server, idle_api: httpx.AsyncClient
) -> None:
    rt = idle_server.runtime
    channel_id = await api_channel(idle_api)
    # Yesterday's messages that failed (a bug since fixed), and one waiting out a retry: all
    # with provider timestamps older than anything fresh.
    old = [msg(f"old{i}", f"old{i}", f"old {i}", T0 + i) for i in range(4)]
    assert (await post_signed(idle_server, channel_id, {"messages": old})).status_code == 200
    async with rt.db.write() as s:
        await s.execute(
            update(InboundEvent)
            .where(InboundEvent.event_key.in_(["msg:old0", "msg:old1", "msg:old2"]))
            .values(state=InboundState.FAILED, attempts=1, error="KeyError: fixed since")
        )
        await s.execute(
            update(InboundEvent)
            .where(InboundEvent.event_key == "msg:old3")
            .values(attempts=2, error="not yet", next_attempt_at=datetime.now(UTC))
        )
    assert await replay(rt) == 3

    # Fresh messages of one conversation, delivered out of provider order (as Meta may).
    fresh = [msg(f"new{i}", "nina", f"new {i}", T0 + 1000 + i) for i in range(5)]
    posted = await post_signed(idle_server, channel_id, {"messages": fresh[::-1]})
    assert posted.status_code == 200

    # The fresh claim takes the fresh ones only, whatever the older timestamps of the others.
    claimed = await process_claim(rt, CUSTOMER_FRESH)
    assert claimed.handled == 5
    by_key = {e.event_key: e for e in await events(rt.db, "customer")}
    assert {k for k, e in by_key.items() if e.state == InboundState.DONE} == {
        f"msg:new{i}" for i in range(5)
    }
    # A replayed event keeps the error it failed with until it is applied.
    assert by_key["msg:old0"].error == "KeyError: fixed since"
    async with rt.db.read() as s:
        texts = (
            await s.scalars(
                select(Message.body).where(Message.direction == "in").order_by(Message.id)
            )
        ).all()
    assert texts == [f"new {i}" for i in range(5)]  # provider order within the conversation

    # The next round applies the retry and the replays, in their own slice.
    while await process_round(rt):
        pass
    by_key = {e.event_key: e for e in await events(rt.db, "customer")}
    assert {e.state for e in by_key.values()} == {InboundState.DONE}
    assert all(e.error is None for e in by_key.values())
    newest_fresh = max(by_key[f"msg:new{i}"].processed_at for i in range(5))  # type: ignore[type-var]
    assert all(by_key[f"msg:old{i}"].processed_at > newest_fresh for i in range(4))  # type: ignore[operator]


async def test_a_customer_only_round_leaves_receipts_and_a_status_round_leaves_customers(
    idle_server: Server, idle_api: httpx.AsyncClient
) -> None:
    rt = idle_server.runtime
    channel_id = await api_channel(idle_api)
    workspace_id, conv_id = await one_conversation(idle_server, channel_id)
    ids = await outbound(rt.db, workspace_id, channel_id, conv_id, 20)
    await status_backlog(rt.db, workspace_id, channel_id, ids)
    posted = await post_signed(idle_server, channel_id, {"messages": [msg("a", "ann", "a", T0)]})
    assert posted.status_code == 200

    while await process_round(rt, (InboundLane.STATUS,)):
        pass
    assert {e.state for e in await events(rt.db, "status")} == {InboundState.DONE}
    assert next(e for e in await events(rt.db, "customer") if e.event_key == "msg:a").state == (
        InboundState.PENDING
    )

    while await process_round(rt, (InboundLane.CUSTOMER,)):
        pass
    assert {e.state for e in await events(rt.db, "customer")} == {InboundState.DONE}


async def test_two_status_workers_share_a_backlog_and_apply_each_receipt_once(
    database_url: str, idle_server: Server, idle_api: httpx.AsyncClient
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("two workers claiming at once: PostgreSQL (SQLite has one writer)")
    rt = idle_server.runtime
    channel_id = await api_channel(idle_api)
    workspace_id, conv_id = await one_conversation(idle_server, channel_id)
    backlog = 1_500
    ids = await outbound(rt.db, workspace_id, channel_id, conv_id, backlog)
    await status_backlog(rt.db, workspace_id, channel_id, ids)

    other = Runtime(idle_server.settings)  # a second worker: its own pool, its own claims
    await other.start()
    try:

        async def work(r: Runtime) -> int:
            handled = 0
            while True:
                claimed = await process_claim(r, STATUS)
                handled += claimed.handled
                if not claimed.more and not claimed.handled:
                    return handled

        counts = await asyncio.gather(work(rt), work(other))
    finally:
        await other.stop()
    assert sum(counts) == backlog  # every receipt handled once, by one of the two
    assert min(counts) > 0, counts  # and both took part
    receipts = await events(rt.db, "status")
    assert len(receipts) == backlog
    assert {e.state for e in receipts} == {InboundState.DONE}
    assert {e.attempts for e in receipts} == {1}  # nobody applied one twice
    async with rt.db.read() as s:
        delivered = await s.scalar(
            select(func.count()).select_from(Message).where(Message.status == "delivered")
        )
    assert delivered == backlog


async def _plan(rt: Runtime, claim: Claim) -> str:
    """The database's plan for `claim`'s statement (the rows it takes, in its order). PostgreSQL
    is asked with sequential scans priced out: on a test's near-empty table its planner would
    rightly read the heap, and the question is whether an index gives the order."""
    stmt = claim_statement(claim, utcnow(), claim.limit)
    async with rt.db.read() as s:
        conn = await s.connection()
        sql = str(stmt.compile(conn.engine, compile_kwargs={"literal_binds": True}))
        if rt.db.is_sqlite:
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
            return " | ".join(str(r[-1]) for r in rows)
        await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = await conn.exec_driver_sql(f"EXPLAIN {sql}")
        return " | ".join(str(r[0]).strip() for r in rows)


@pytest.mark.parametrize(
    ("claim", "index"),
    [
        (CUSTOMER_FRESH, "ix_inbound_event_customer_order"),
        (CUSTOMER_RETRIES, "ix_inbound_event_lane_due"),
        (STATUS, "ix_inbound_event_lane_due"),
    ],
    ids=["customer", "customer-retries", "status"],
)
async def test_each_lane_claim_walks_an_index_in_its_order_and_stops(
    idle_server: Server, claim: Claim, index: str
) -> None:
    """Each claim reads its first n rows in its own order through an index and stops there; it
    must not sort every pending row of its lane (a status backlog is tens of thousands of rows,
    and the customer claim runs before every status slice). Read from the database's plan."""
    plan = await _plan(idle_server.runtime, claim)
    assert f"{index} " in plan, plan
    if idle_server.runtime.db.is_sqlite:
        assert "TEMP B-TREE" not in plan, plan  # no sort of the lane's pending rows
    else:
        # An incremental sort orders ties within one index key; a Sort node sorts them all.
        steps = [step.removeprefix("-> ") for step in plan.split(" | ")]
        assert not any(step.startswith("Sort") for step in steps), plan
