"""Rate-limit buckets and worker wake-ups shared across processes through Redis."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.conftest import REDIS_URL
from tidings.ratelimit import (
    WINDOW_MARGIN,
    MemoryRateLimiter,
    RedisRateLimiter,
    tier_window,
    window_for,
)
from tidings.realtime.notify import RedisWakeups

needs_redis = pytest.mark.skipif(REDIS_URL is None, reason="needs TIDINGS_TEST_REDIS_URL")


async def test_memory_sweeps_wait_for_twice_what_the_last_one_kept() -> None:
    """Buckets that have not refilled survive a sweep; the next sweep waits until there are
    twice as many, so a campaign's thousands of live per-customer buckets are not rescanned
    every few sends."""
    at = MemoryRateLimiter.SWEEP_AT
    limiter = MemoryRateLimiter()
    for i in range(at):  # the at-th sweeps, and keeps all of them (none refilled)
        await limiter.acquire(f"slow:{i}", rate=0.001, burst=1)
    assert len(limiter) == at
    for i in range(at - 1):
        await limiter.acquire(f"fast:{i}", rate=1000.0, burst=1)
    await asyncio.sleep(0.01)  # the fast ones refill, but nothing sweeps below 2 * at
    assert len(limiter) == 2 * at - 1
    await limiter.acquire("trigger", rate=1000.0, burst=1)
    assert len(limiter) == at + 1  # the slow ones and the trigger, just taken


async def test_memory_bucket_allows_burst_then_waits() -> None:
    limiter = MemoryRateLimiter()
    for _ in range(3):
        await asyncio.wait_for(limiter.acquire("k", rate=0.001, burst=3), 1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limiter.acquire("k", rate=0.001, burst=3), 0.3)


async def test_memory_buckets_that_refilled_are_dropped() -> None:
    """One bucket per customer must not pile up: refilled buckets (the same as none) go."""
    limiter = MemoryRateLimiter()
    for i in range(MemoryRateLimiter.SWEEP_AT - 2):
        await limiter.acquire(f"recipient:{i}", rate=1000.0, burst=1)
    await limiter.acquire("slow", rate=0.001, burst=1)  # far from refilled: stays
    assert len(limiter) == MemoryRateLimiter.SWEEP_AT - 1  # no sweep yet
    await asyncio.sleep(0.01)  # the fast buckets refill (1 ms each)
    await limiter.acquire("trigger", rate=1000.0, burst=1)  # the SWEEP_AT-th bucket sweeps
    assert len(limiter) <= 2
    # A swept bucket starts full again, as it would have been.
    await asyncio.wait_for(limiter.acquire("recipient:0", rate=0.001, burst=1), 1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limiter.acquire("slow", rate=0.001, burst=1), 0.2)


async def test_memory_window_holds_the_limit_spaces_sends_and_catches_up_after_a_stall() -> None:
    """At most `limit` per window, sends at least window/limit/2 apart (no bursts), and a
    stall costs nothing: afterwards the sends go at the catch-up spacing, not the cap's."""
    limiter = MemoryRateLimiter()
    loop = asyncio.get_running_loop()
    started = loop.time()
    times = []
    for _ in range(10):
        await limiter.acquire_window("w", limit=5, window=0.4)
        times.append(loop.time() - started)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= 0.04 * 0.95 for g in gaps)  # spacing 0.4 / 5 / 2
    for i in range(5, 10):  # the sixth waits for the first to leave its window, and so on
        assert times[i] - times[i - 5] >= 0.4 * 0.99
    assert times[4] < 0.04 * 4 + 0.1  # the first window's five at the catch-up spacing
    await asyncio.sleep(0.5)  # a stall of more than a window: nothing owed, nothing lost
    before = loop.time()
    for _ in range(5):
        await limiter.acquire_window("w", limit=5, window=0.4)
    assert loop.time() - before < 0.04 * 4 + 0.1


async def test_unspaced_window_lets_a_window_go_at_once_and_never_more() -> None:
    """A channel's tier: the window's `limit` go without spacing, the next waits for the first
    to leave the window — never `limit + 1` in any window (a bucket with a window's burst let
    twice the limit into one)."""
    limiter = MemoryRateLimiter()
    loop = asyncio.get_running_loop()
    started = loop.time()
    times = []
    for _ in range(12):
        await limiter.acquire_window("tier", limit=6, window=0.3, spaced=False)
        times.append(loop.time() - started)
    assert times[5] < 0.05  # the first six at once
    for i in range(6, 12):
        assert times[i] - times[i - 6] >= 0.3 * 0.99, times
    assert times[6] >= 0.3 * 0.99


def test_window_for_a_cap() -> None:
    margin = 1 + WINDOW_MARGIN
    assert window_for(80) == (80, 1.0 * margin)
    limit, window = window_for(2.5)
    assert limit == 2 and abs(window - 0.8 * margin) < 1e-9  # 2.5/s, never 3 in a second
    assert window_for(0.5) == (1, 2.0 * margin)


@needs_redis
async def test_two_processes_share_one_redis_window() -> None:
    """Two limiters (as two processes would) taking turns share one window: the fifth send,
    whoever makes it, waits for the first to leave the window, and sends stay spaced."""
    assert REDIS_URL is not None
    a, b = RedisRateLimiter(REDIS_URL), RedisRateLimiter(REDIS_URL)
    key = f"test-window:{id(a)}"
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        times = []
        for limiter in (a, b) * 4:
            await asyncio.wait_for(limiter.acquire_window(key, limit=4, window=0.3), 2)
            times.append(loop.time() - started)
        for i in range(4, 8):
            assert times[i] - times[i - 4] >= 0.3 * 0.95, times
        gaps = [y - x for x, y in itertools.pairwise(times)]
        assert all(g >= 0.3 / 4 / 2 * 0.9 for g in gaps), gaps
        # Other keys are independent.
        await asyncio.wait_for(b.acquire_window(key + ":other", limit=1, window=60), 1)
    finally:
        await a.aclose()
        await b.aclose()


@needs_redis
async def test_two_processes_share_one_unspaced_redis_window() -> None:
    assert REDIS_URL is not None
    a, b = RedisRateLimiter(REDIS_URL), RedisRateLimiter(REDIS_URL)
    key = f"test-tier:{id(a)}"
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        times = []
        for limiter in (a, b) * 5:
            await asyncio.wait_for(
                limiter.acquire_window(key, limit=5, window=0.4, spaced=False), 2
            )
            times.append(loop.time() - started)
        assert times[4] < 0.1, times  # five at once, whichever process sends them
        for i in range(5, 10):
            assert times[i] - times[i - 5] >= 0.4 * 0.95, times
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


def test_tier_window_spaces_low_tiers_and_stays_inside_a_campaign_cap() -> None:
    """A tier's window is a little shorter than a campaign's at the same rate (so a campaign
    capped at its tier is held by its own window), spaced where half a slot is a millisecond or
    more, unspaced above (1,000/s)."""
    limit, window, spaced = tier_window(80)
    assert (limit, spaced) == (80, True)
    assert 1.0 < window < window_for(80)[1]
    assert tier_window(6)[2] is True
    assert tier_window(1000)[:1] == (1000,) and tier_window(1000)[2] is False
