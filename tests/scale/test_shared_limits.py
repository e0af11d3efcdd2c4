"""Rate-limit buckets and worker wake-ups shared across processes through Redis."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import REDIS_URL
from tidings.delivery.ratelimit import (
    WINDOW_MARGIN,
    MemoryRateLimiter,
    RedisRateLimiter,
    window_for,
)
from tidings.realtime.notify import RedisWakeups

needs_redis = pytest.mark.skipif(REDIS_URL is None, reason="needs TIDINGS_TEST_REDIS_URL")


async def test_memory_bucket_allows_burst_then_waits() -> None:
    limiter = MemoryRateLimiter()
    for _ in range(3):
        await asyncio.wait_for(limiter.acquire("k", rate=0.001, burst=3), 1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limiter.acquire("k", rate=0.001, burst=3), 0.3)


async def test_memory_window_holds_the_limit_and_catches_up_after_a_stall() -> None:
    """At most `limit` per window, and a stall costs nothing: the next sends go at once."""
    limiter = MemoryRateLimiter()
    loop = asyncio.get_running_loop()
    started = loop.time()
    times = []
    for _ in range(10):
        await limiter.acquire_window("w", limit=5, window=0.4)
        times.append(loop.time() - started)
    assert all(t < 0.1 for t in times[:5])  # the first window's five at once
    assert all(t >= 0.4 * 0.99 for t in times[5:])  # the next five wait for it to pass
    assert all(t < 0.4 + 0.3 for t in times[5:])
    await asyncio.sleep(0.5)  # a stall of more than a window: nothing owed, nothing lost
    before = loop.time()
    for _ in range(5):
        await limiter.acquire_window("w", limit=5, window=0.4)
    assert loop.time() - before < 0.1


def test_window_for_a_cap() -> None:
    margin = 1 + WINDOW_MARGIN
    assert window_for(80) == (80, 1.0 * margin)
    limit, window = window_for(2.5)
    assert limit == 2 and abs(window - 0.8 * margin) < 1e-9  # 2.5/s, never 3 in a second
    assert window_for(0.5) == (1, 2.0 * margin)


@needs_redis
async def test_two_processes_share_one_redis_window() -> None:
    assert REDIS_URL is not None
    a, b = RedisRateLimiter(REDIS_URL), RedisRateLimiter(REDIS_URL)
    key = f"test-window:{id(a)}"
    try:
        for limiter in (a, b, a, b):
            await asyncio.wait_for(limiter.acquire_window(key, limit=4, window=60), 1)
        for limiter in (a, b):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(limiter.acquire_window(key, limit=4, window=60), 0.3)
        # A short window: the fifth waits for the first to leave it, then goes.
        short = key + ":short"
        loop = asyncio.get_running_loop()
        started = loop.time()
        for limiter in (a, b, a, b, a):
            await asyncio.wait_for(limiter.acquire_window(short, limit=4, window=0.3), 2)
        assert loop.time() - started >= 0.3 * 0.99
    finally:
        await a.aclose()
        await b.aclose()


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
