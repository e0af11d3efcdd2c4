"""Wake-ups for workers: "there is new work in queue X".

Workers also poll, so a lost wake-up costs latency, never work. In one process an
`asyncio.Event` per queue is enough; with Redis, a web process that stored webhook events
wakes the ingest workers of every other process through a pub/sub channel. Wake-ups are
coalesced: at most one publish per queue every few milliseconds, however many commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

CHANNEL = "tidings:wake"
COALESCE_SECONDS = 0.002


class RedisWakeups:
    def __init__(self, url: str, on_wake: Callable[[str], None]) -> None:
        from redis.asyncio import Redis

        self._redis: Redis = Redis.from_url(url)
        self._on_wake = on_wake
        self._pending: set[str] = set()
        self._flag = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="wakeups-listen"),
            asyncio.create_task(self._publish_loop(), name="wakeups-publish"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._redis.aclose()

    def publish(self, queue: str) -> None:
        self._pending.add(queue)
        self._flag.set()

    async def _publish_loop(self) -> None:
        while True:
            await self._flag.wait()
            await asyncio.sleep(COALESCE_SECONDS)
            self._flag.clear()
            queues, self._pending = self._pending, set()
            try:
                for queue in queues:
                    await self._redis.publish(CHANNEL, queue)
            except Exception:
                log.warning("could not publish wake-ups %s; workers will poll", queues)

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._on_wake(message["data"].decode())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("wake-up listener lost Redis; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)
