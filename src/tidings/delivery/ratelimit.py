"""Token buckets per channel account, so we never send faster than a provider allows."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class RateLimiter(Protocol):
    async def acquire(self, key: str, rate: float, burst: int) -> None:
        """Wait until one token is available in bucket `key`, then take it."""
        ...


class MemoryRateLimiter:
    """In-process buckets (one process). Multi-process deployments use a shared limiter."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)
        self._locks: dict[str, asyncio.Lock] = {}

    def _take(self, key: str, rate: float, burst: int) -> float:
        """Take a token if one is there; else return how long to wait for one."""
        now = time.monotonic()
        tokens, updated = self._buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - updated) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate

    async def acquire(self, key: str, rate: float, burst: int) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            while True:
                wait = self._take(key, rate, burst)
                if wait <= 0:
                    return
                await asyncio.sleep(wait)
