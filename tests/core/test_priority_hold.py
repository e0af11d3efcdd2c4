"""A customer's event on its way to the agents holds the background loops' SQLite writes back
(`storage.db.PriorityHold`, issue 14: the customer lane stays within a second during a
broadcast). Ordered by events, never timed."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import Owner, Server
from tests.core.test_ingest import api_channel, msg, post_signed
from tidings.storage import db as storage_db
from tidings.storage.db import BACKGROUND_WRITER, PriorityHold
from tidings.storage.models import Message


async def _yields(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_the_hold_ends_only_for_the_generation_that_looked_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(storage_db, "HOLD_WAIT_SECONDS", 3600.0)
    hold = PriorityHold()
    hold.begin()
    assert not hold.held  # nobody serves the customer lane here: nobody would end it
    hold.enabled = True
    hold.begin()
    looked = hold.generation
    hold.begin()  # another customer webhook after the worker looked
    waiter = asyncio.create_task(hold.wait())
    hold.end(looked)
    await _yields()
    assert hold.held and not waiter.done()
    hold.end(hold.generation)
    await asyncio.wait_for(waiter, 60)
    assert not hold.held
    await asyncio.wait_for(hold.wait(), 60)  # not held: returns at once


async def test_the_hold_gives_up_after_its_bound() -> None:
    hold = PriorityHold()
    hold.enabled = True
    hold.begin()
    await asyncio.wait_for(hold.wait(), 60)  # HOLD_WAIT_SECONDS, then on
    assert hold.held


async def test_background_writes_wait_until_the_customer_message_is_applied(
    server: Server, owner: Owner, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingest loop of the server ends the hold once it applied the customer's message; a
    background writer that asked for the write lock meanwhile starts only then, and sees the
    message."""
    rt = server.runtime
    if not rt.db.is_sqlite:
        pytest.skip("PostgreSQL: no single writer and loop to share; the hold is not used")
    monkeypatch.setattr(storage_db, "HOLD_WAIT_SECONDS", 3600.0)
    assert rt.db.priority.enabled  # the server runs the ingest loop in its process
    channel_id = await api_channel(api)
    seen: list[int] = []

    async def background() -> None:
        BACKGROUND_WRITER.set(True)
        async with rt.db.write() as s:
            count = select(func.count()).select_from(Message).where(Message.body == "hold me")
            seen.append(int(await s.scalar(count) or 0))

    holding = asyncio.Event()
    release = asyncio.Event()

    async def blocker() -> None:
        # SQLite's writer is taken, so the customer's webhook waits for its commit.
        async with rt.db.write() as s:
            await s.scalar(select(func.count()).select_from(Message))
            holding.set()
            await release.wait()

    held = asyncio.create_task(blocker())
    await holding.wait()
    webhook = asyncio.create_task(
        post_signed(
            server, channel_id, {"messages": [msg("hold-1", "ann", "hold me", 1_750_000_000)]}
        )
    )
    while not rt.committer.customers_waiting:
        await asyncio.sleep(0.01)
    assert rt.db.priority.held
    waiting = asyncio.create_task(background())
    await _yields()
    assert not waiting.done()
    release.set()
    await held
    assert (await webhook).status_code == 200
    await asyncio.wait_for(waiting, 60)
    assert seen == [1]
    assert not rt.db.priority.held
