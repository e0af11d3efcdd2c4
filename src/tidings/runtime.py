"""The services one process runs with, built once and passed explicitly (no globals)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel
from sqlalchemy import select

from tidings.channels.base import ChannelAdapter
from tidings.channels.registry import get_adapter
from tidings.config import Settings
from tidings.domain.enums import Queue
from tidings.egress import Egress, EgressPolicy
from tidings.httpclient import outbound_client
from tidings.ingest.committer import GroupCommitter
from tidings.ingest.lag import LagGauge
from tidings.ratelimit import RateLimiter, make_rate_limiter
from tidings.realtime.bus import EventBus, make_bus
from tidings.realtime.notify import RedisWakeups
from tidings.storage.crypto import SecretBox
from tidings.storage.db import Database
from tidings.storage.models import Channel

log = logging.getLogger(__name__)

T = TypeVar("T")


# Allocations between young-generation collections (Python's default: 700); see `tune_gc`.
GC_THRESHOLD = 20_000


def tune_gc() -> None:
    """For a long-running Tidings process (`tidings serve`, `tidings worker`), after imports:
    Python's cyclic collector with fewer, larger passes. A campaign batch makes thousands of
    ORM objects and rows; at the default threshold (a pass every 700 allocations, a full pass
    over every live object every 100 passes) collection was ~15 % of the fan-out's CPU. Objects
    alive at start-up (modules, mappers, compiled statements) move to the permanent generation
    (`gc.freeze`), so full passes skip them. Not for test processes: freezing there would keep
    earlier tests' objects forever."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)


CHANNEL_CACHE_SECONDS = 10.0
QUEUES: tuple[str, ...] = tuple(Queue)


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A channel with its decrypted, validated config: what the hot paths need."""

    id: int
    workspace_id: int
    inbox_id: int
    kind: str
    name: str
    active: bool
    adapter: ChannelAdapter
    config: BaseModel


class ChannelCache:
    """Channel lookups for webhook and delivery hot paths, without a query and a decryption per
    request. Entries live CHANNEL_CACHE_SECONDS; changes made here invalidate at once."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box
        self._entries: dict[int, tuple[float, ChannelInfo | None]] = {}
        self._loading: dict[int, asyncio.Future[ChannelInfo | None]] = {}

    def build(self, row: Channel) -> ChannelInfo:
        adapter = get_adapter(row.kind)
        config = adapter.config_model.model_validate(self._box.decrypt_json(row.config_encrypted))
        return ChannelInfo(
            row.id, row.workspace_id, row.inbox_id, row.kind, row.name, row.active, adapter, config
        )

    async def get(self, channel_id: int) -> ChannelInfo | None:
        now = time.monotonic()
        hit = self._entries.get(channel_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        # One load per channel however many requests miss at once (a cold process under load).
        loading = self._loading.get(channel_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(channel_id))
            self._loading[channel_id] = loading
            loading.add_done_callback(lambda _f: self._loading.pop(channel_id, None))
        return await asyncio.shield(loading)

    async def _load(self, channel_id: int) -> ChannelInfo | None:
        async with self._db.aux() as session:
            row = await session.scalar(select(Channel).where(Channel.id == channel_id))
        info = self.build(row) if row is not None else None
        self._entries[channel_id] = (time.monotonic() + CHANNEL_CACHE_SECONDS, info)
        return info

    def invalidate(self, channel_id: int) -> None:
        self._entries.pop(channel_id, None)


class Runtime:
    def __init__(self, settings: Settings, *, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self.box = SecretBox(settings.secret_key)
        self.bus: EventBus = make_bus(settings.redis_url)
        self.channels = ChannelCache(self.db, self.box)
        self.http = http or outbound_client()
        # URLs from outside (payload media, outgoing-webhook targets) go through the policy.
        self.egress = Egress(EgressPolicy.from_settings(settings))
        self.rate_limiter: RateLimiter = make_rate_limiter(settings.redis_url)
        self._wake = {name: asyncio.Event() for name in QUEUES}
        # How often each queue was woken: a worker compares it to tell "new work arrived
        # while I was busy" (the ingest loop cuts a status slice short for a customer).
        self.wake_counts = dict.fromkeys(QUEUES, 0)
        self.wakeups = (
            RedisWakeups(settings.redis_url, self._local_wake) if settings.redis_url else None
        )
        self.committer = GroupCommitter(self.db, lambda: self.wake(Queue.INGEST))
        # Inbound lag per lane, cached: /metrics, the agent UI's banner.
        self.lag = LagGauge(self.db)
        self.background: set[asyncio.Task[Any]] = set()
        # True in a process that also serves HTTP (workers then yield to webhook traffic).
        self.web_process = False
        # Called after a channel is created (the sandbox registers its simulated accounts).
        self.channel_hooks: list[Callable[[ChannelInfo], Awaitable[None]]] = []

    def wake(self, queue: str) -> None:
        """New work in `queue`: wake this process's worker, and other processes' via Redis."""
        self._local_wake(queue)
        if self.wakeups is not None:
            self.wakeups.publish(queue)

    def _local_wake(self, queue: str) -> None:
        if queue in self.wake_counts:
            self.wake_counts[queue] += 1
        event = self._wake.get(queue)
        if event is not None:
            event.set()

    async def wait_for_work(self, queue: str, seconds: float) -> None:
        event = self._wake[queue]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        event.clear()

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """A background task with a held reference and logged failure (never fire-and-forget)."""
        task: asyncio.Task[Any] = asyncio.create_task(coro, name=name)
        self.background.add(task)

        def _done(t: asyncio.Task[Any]) -> None:
            self.background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task %s failed", name, exc_info=t.exception())

        task.add_done_callback(_done)
        return task

    async def start(self) -> None:
        await self.bus.start()
        if self.wakeups is not None:
            await self.wakeups.start()
        self.committer.start()

    async def stop(self) -> None:
        """Stop everything, each step bounded: a step that hangs is logged, not waited for."""
        for task in list(self.background):
            task.cancel()
        if self.background:
            await _bounded(
                "background tasks", asyncio.gather(*self.background, return_exceptions=True)
            )
        await _bounded("group committer", self.committer.stop())
        if self.wakeups is not None:
            await _bounded("wake-ups", self.wakeups.stop())
        await _bounded("event bus", self.bus.stop())
        closer = getattr(self.rate_limiter, "aclose", None)
        if closer is not None:
            await _bounded("rate limiter", closer())
        await _bounded("HTTP client", self.http.aclose())
        await _bounded("egress client", self.egress.aclose())
        await _bounded("database", self.db.dispose())


async def one_shot(settings: Settings, fn: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run `fn` with a runtime of its own (the one-shot CLI commands), closed afterwards."""
    rt = Runtime(settings)
    try:
        return await fn(rt)
    finally:
        await rt.db.dispose()
        await rt.http.aclose()


async def _bounded(what: str, step: Awaitable[Any], seconds: float = 5.0) -> None:
    try:
        await asyncio.wait_for(step, seconds)
    except TimeoutError:
        log.warning("shutdown: %s did not finish within %.0f s; going on", what, seconds)
    except Exception:
        log.exception("shutdown: %s failed; going on", what)
