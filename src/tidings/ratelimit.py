"""Token buckets per channel account, so we never send faster than a provider allows."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any, Protocol

from tidings.channels.base import Capabilities


class RateLimiter(Protocol):
    async def acquire(self, key: str, rate: float, burst: int) -> None:
        """Wait until one token is available in bucket `key`, then take it."""
        ...

    async def acquire_window(
        self, key: str, limit: int, window: float, *, spaced: bool = True
    ) -> None:
        """Wait until fewer than `limit` sends happened under `key` in the last `window`
        seconds, and (`spaced`) at least `window / limit / 2` passed since the previous one,
        then count this one (a sliding-window log). The spacing keeps sends from leaving in
        bursts: a burst reaches the provider spread over however long it takes to process, and
        the next window's burst, processed faster, would find the provider's window still full.
        A channel's tier goes unspaced where half a slot is under MIN_SPACING (`tier_window`:
        at 1,000/s half a millisecond, finer than the event loop's timers)."""
        ...


# 0.5 %: 80/s becomes 80 per 1.005 s (79.6/s), which keeps arrivals under the provider's window
# through ~5 ms of jitter (sends are spaced, so that is what a busy moment adds).
WINDOW_MARGIN = 0.005
# A channel's tier window: half the margin, so that a campaign capped at its channel's tier is
# held by its own window, never by the tier's behind it (whose entries trail the campaign's by
# the moment between the two; equal windows made every send wait a timer tick: 78.8/s at 80).
TIER_MARGIN = WINDOW_MARGIN / 2
# Below this, spacing sends half a slot apart is finer than the event loop's timers (a tier of
# 1,000/s): such windows go unspaced.
MIN_SPACING = 0.001


def window_for(rate: float, margin: float = WINDOW_MARGIN) -> tuple[int, float]:
    """(limit, window) for a cap of `rate` per second: `floor(rate)` sends per
    `floor(rate) / rate` seconds (1 s for whole rates). Unlike a token bucket of burst 1, a
    sliding window does not lose what a late timer or a busy moment cost: it catches up at once
    as far as the window allows, so the achieved rate is the cap while no one-second window
    holds more than the cap. The window is `margin` longer than exact: a request's trip to
    the provider varies by milliseconds, and the provider counts arrivals, not departures (a
    channel's tier takes `TIER_MARGIN`)."""
    limit = max(1, int(rate))
    return limit, limit / rate * (1.0 + margin)


def tier_window(rate: float) -> tuple[int, float, bool]:
    """(limit, window, spaced) of a channel's tier window (`channel_rate`)."""
    limit, window = window_for(rate, TIER_MARGIN)
    return limit, window, window / limit / 2 >= MIN_SPACING


def channel_rate(caps: Capabilities, config: Any) -> float:
    """Sends per second one channel account may make: the channel's own throughput tier when its
    config has one (`messages_per_second`, e.g. WhatsApp's 80 → 1,000 upgrade), else the kind's
    default from its capabilities. The delivery worker holds it as a sliding one-second window
    (`window_for`): providers count per second (WhatsApp's 130429), and a token bucket would let
    a full burst plus a second's refill — up to twice the tier — into one second."""
    tier = getattr(config, "messages_per_second", None)
    if isinstance(tier, int | float) and not isinstance(tier, bool) and tier > 0:
        return float(tier)
    return caps.rate_per_second


class MemoryRateLimiter:
    """In-process buckets (one process). Multi-process deployments use a shared limiter.

    Buckets are per key, and some keys are per customer (WhatsApp's pair limit), so buckets
    that have refilled completely — the same as no bucket — are dropped now and then: a
    100,000-recipient campaign must not leave 100,000 buckets behind. A sweep runs when the
    count reaches a mark that is then set to twice what the sweep kept (at least `SWEEP_AT`):
    per-customer buckets take seconds to refill, so at a campaign's pace most survive a sweep,
    and sweeping every few thousand takes rescanned them all (7 % of the delivery worker's
    CPU); doubling makes the scans cost a constant per bucket."""

    SWEEP_AT = 4096

    def __init__(self) -> None:
        # key -> (tokens, updated, rate, burst)
        self._buckets: dict[str, tuple[float, float, float, int]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._windows: dict[str, collections.deque[float]] = {}
        self._sweep_at = self.SWEEP_AT

    def _take(self, key: str, rate: float, burst: int) -> float:
        """Take a token if one is there; else return how long to wait for one."""
        now = time.monotonic()
        tokens, updated, _rate, _burst = self._buckets.get(key, (float(burst), now, rate, burst))
        tokens = min(float(burst), tokens + (now - updated) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now, rate, burst)
            return 0.0
        self._buckets[key] = (tokens, now, rate, burst)
        return (1.0 - tokens) / rate

    def _sweep(self) -> None:
        now = time.monotonic()
        for key, (tokens, updated, rate, burst) in list(self._buckets.items()):
            lock = self._locks.get(key)
            if tokens + (now - updated) * rate >= burst and not (lock and lock.locked()):
                del self._buckets[key]
                self._locks.pop(key, None)

    def __len__(self) -> int:
        return len(self._buckets)

    async def acquire(self, key: str, rate: float, burst: int) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            while True:
                wait = self._take(key, rate, burst)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
        if len(self._buckets) >= self._sweep_at:
            self._sweep()
            self._sweep_at = max(self.SWEEP_AT, 2 * len(self._buckets))

    async def acquire_window(
        self, key: str, limit: int, window: float, *, spaced: bool = True
    ) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            log = self._windows.setdefault(key, collections.deque())
            spacing = window / limit / 2 if spaced else 0.0
            while True:
                now = time.monotonic()
                while log and log[0] <= now - window:
                    log.popleft()
                if log and now < log[-1] + spacing:
                    await asyncio.sleep(log[-1] + spacing - now)
                    continue
                if len(log) < limit:
                    log.append(now)
                    return
                await asyncio.sleep(log[0] + window - now)


# One atomic step of a token bucket in Redis: refill by elapsed time, take a token if there is
# one, else report how long until there will be. Uses the server's clock so every process
# agrees. Returns the wait in microseconds (0 = token taken).
_TAKE = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000000 / rate)
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 60000)
return wait
"""


# A sliding-window log in Redis: a sorted set of send times (server clock, microseconds). Drop
# what left the window; wait out the spacing after the latest send; if fewer than `limit`
# remain, add this send; else report the wait until the oldest leaves. Members are unique
# (time + a counter), so two sends in one microsecond count twice.
_WINDOW = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window_us = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window_us)
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
local spacing = math.floor(window_us / limit / 2) * tonumber(ARGV[3])
if last[2] ~= nil and now < tonumber(last[2]) + spacing then
  return tonumber(last[2]) + spacing - now
end
if redis.call('ZCARD', key) < limit then
  local n = redis.call('INCR', key .. ':seq')
  redis.call('ZADD', key, now, tostring(now) .. ':' .. tostring(n))
  redis.call('PEXPIRE', key, math.ceil(window_us / 1000) + 60000)
  redis.call('PEXPIRE', key .. ':seq', math.ceil(window_us / 1000) + 60000)
  return 0
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window_us - now)
"""


class RedisRateLimiter:
    """Buckets shared by every process through Redis, so N workers together stay under a
    provider's limit instead of each taking the whole limit."""

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self._redis: Redis = Redis.from_url(url)
        self._take = self._redis.register_script(_TAKE)
        self._window = self._redis.register_script(_WINDOW)

    async def acquire(self, key: str, rate: float, burst: int) -> None:
        while True:
            wait_us = int(await self._take(keys=[f"tidings:bucket:{key}"], args=[rate, burst]))
            if wait_us <= 0:
                return
            await asyncio.sleep(wait_us / 1_000_000)

    async def acquire_window(
        self, key: str, limit: int, window: float, *, spaced: bool = True
    ) -> None:
        window_us = max(1, round(window * 1_000_000))
        while True:
            wait_us = int(
                await self._window(
                    keys=[f"tidings:window:{key}"], args=[limit, window_us, int(spaced)]
                )
            )
            if wait_us <= 0:
                return
            await asyncio.sleep(wait_us / 1_000_000)

    async def aclose(self) -> None:
        await self._redis.aclose()


def make_rate_limiter(redis_url: str | None) -> RateLimiter:
    if redis_url:
        return RedisRateLimiter(redis_url)
    return MemoryRateLimiter()
