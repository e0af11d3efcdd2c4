"""Rate-limit buckets and worker wake-ups shared across processes through Redis."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import REDIS_URL
from tidings.delivery.ratelimit import MemoryRateLimiter, RedisRateLimiter
from tidings.realtime.notify import RedisWakeups

needs_redis = pytest.mark.skipif(REDIS_URL is None, reason="needs TIDINGS_TEST_REDIS_URL")


async def test_memory_bucket_allows_burst_then_waits() -> None:
    limiter = MemoryRateLimiter()
    for _ in range(3):
        await asyncio.wait_for(limiter.acquire("k", rate=0.001, burst=3), 1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limiter.acquire("k", rate=0.001, burst=3), 0.3)


@needs_redis
async def test_two_processes_share_one_redis_bucket() -> None:
    assert REDIS_URL is not None
    a, b = RedisRateLimiter(REDIS_URL), RedisRateLimiter(REDIS_URL)
    key = f"test:{id(a)}"
    try:
        # A bucket of 4 with (practically) no refill: together, not each, they get 4 tokens.
        for limiter in (a, b, a, b):
            await asyncio.wait_for(limiter.acquire(key, rate=0.001, burst=4), 1)
        for limiter in (a, b):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(limiter.acquire(key, rate=0.001, burst=4), 0.3)
        # Other keys are independent.
        await asyncio.wait_for(b.acquire(key + ":other", rate=0.001, burst=1), 1)
    finally:
        await a.aclose()
        await b.aclose()


@needs_redis
async def test_wakeups_reach_other_processes() -> None:
    assert REDIS_URL is not None
    woken: list[str] = []
    got = asyncio.Event()

    def on_wake(queue: str) -> None:
        woken.append(queue)
        got.set()

    sender = RedisWakeups(REDIS_URL, lambda _q: None)
    receiver = RedisWakeups(REDIS_URL, on_wake)
    await sender.start()
    await receiver.start()
    try:
        await asyncio.sleep(0.3)  # subscription established
        for _ in range(50):
            sender.publish("ingest")  # coalesced into very few messages
        await asyncio.wait_for(got.wait(), 5)
        await asyncio.sleep(0.1)
        assert set(woken) == {"ingest"}
        assert 1 <= len(woken) < 50
    finally:
        await sender.stop()
        await receiver.stop()
