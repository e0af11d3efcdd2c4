"""The live event bus.

Events are published only after the transaction that produced them commits (see
`actions.base.Tx`). Each event has an id that a reconnecting SSE client sends back as
`Last-Event-ID`, so a short disconnect loses nothing.

- `MemoryBus`: one process. A ring buffer keeps recent events for resume.
- `RedisBus`: several processes. Events go to a Redis stream (XADD, capped); each process runs
  one reader that fans events out to its local subscribers, and resume reads the stream itself,
  so an agent can reconnect to any web process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson

log = logging.getLogger(__name__)

HISTORY = 10_000
SUBSCRIBER_QUEUE = 1_000
FRAME_CACHE = 256


@dataclass(frozen=True, slots=True)
class LiveEvent:
    type: str
    workspace_id: int
    # The inbox the subject lives in; who may receive the event is decided by its type
    # (`access.EVENT_AUDIENCE`), for inbox events from this and `inbox_ids`.
    inbox_id: int | None
    data: dict[str, Any]
    id: str = ""
    # More inboxes the subject lives in (a contact's conversations may be in several).
    inbox_ids: tuple[int, ...] = ()

    def inboxes(self) -> tuple[int, ...]:
        return self.inbox_ids if self.inbox_id is None else (self.inbox_id, *self.inbox_ids)

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "type": self.type,
                "ws": self.workspace_id,
                "inbox": self.inbox_id,
                "data": self.data,
                "inboxes": self.inbox_ids,
            }
        )

    def sse_frame(self) -> bytes:
        """The event as one SSE frame, encoded once however many clients receive it."""
        frame = _FRAMES.get(self.id)
        if frame is None or frame[0] is not self:
            body = b"id: %s\nevent: %s\ndata: %s\n\n" % (
                self.id.encode(),
                self.type.encode(),
                orjson.dumps(self.data),
            )
            frame = (self, body)
            _FRAMES[self.id] = frame
            if len(_FRAMES) > FRAME_CACHE:
                _FRAMES.pop(next(iter(_FRAMES)))
        return frame[1]

    @staticmethod
    def decode(event_id: str, raw: bytes) -> LiveEvent:
        obj = orjson.loads(raw)
        return LiveEvent(
            obj["type"],
            obj["ws"],
            obj["inbox"],
            obj["data"],
            event_id,
            tuple(obj.get("inboxes") or ()),
        )


# Encoded frames of the latest events, keyed by event id (and checked by identity): fanning
# one event out to a thousand clients encodes it once, not a thousand times.
_FRAMES: dict[str, tuple[LiveEvent, bytes]] = {}

# Yielded by `subscribe(..., idle=seconds)` when nothing arrived for that long (SSE keepalives
# without a task per event and client).
IDLE = LiveEvent("idle", 0, None, {}, "")


class Subscription:
    """A local subscriber. Overflow (a client far too slow) closes it; the client resumes."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.closed = False

    def offer(self, event: LiveEvent) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.get_nowait()
                self.queue.put_nowait(None)


class EventBus(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, events: list[LiveEvent]) -> None: ...
    def subscribe(
        self, last_event_id: str | None, idle: float | None = None
    ) -> AsyncIterator[LiveEvent]: ...
    def subscriber_count(self) -> int: ...


class _LocalFanout:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def fan_out(self, event: LiveEvent) -> None:
        for sub in list(self._subs):
            sub.offer(event)

    def subscriber_count(self) -> int:
        return len(self._subs)

    def close_all(self) -> None:
        """End every local subscription (stopping)."""
        for sub in list(self._subs):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)

    async def _drain(self, sub: Subscription, idle: float | None) -> AsyncIterator[LiveEvent]:
        while True:
            if idle is None:
                event = await sub.queue.get()
            else:
                try:
                    async with asyncio.timeout(idle):
                        event = await sub.queue.get()
                except TimeoutError:
                    yield IDLE
                    continue
            if event is None:
                return
            yield event


class MemoryBus(_LocalFanout):
    def __init__(self) -> None:
        super().__init__()
        self._seq = 0
        self._history: deque[LiveEvent] = deque(maxlen=HISTORY)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.close_all()

    async def publish(self, events: list[LiveEvent]) -> None:
        for event in events:
            self._seq += 1
            stamped = replace(event, id=str(self._seq))
            self._history.append(stamped)
            self.fan_out(stamped)

    def _since(self, last_event_id: str | None) -> list[LiveEvent]:
        if not last_event_id or not last_event_id.isdigit():
            return []
        last = int(last_event_id)
        return [e for e in self._history if int(e.id) > last]

    async def subscribe(
        self, last_event_id: str | None, idle: float | None = None
    ) -> AsyncIterator[LiveEvent]:
        sub = Subscription()
        # Register before reading history so nothing published in between is missed.
        self._subs.add(sub)
        try:
            replayed = self._since(last_event_id)
            seen = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
            if replayed:
                seen = int(replayed[-1].id)
            for event in replayed:
                yield event
            async for event in self._drain(sub, idle):
                if event is IDLE:
                    yield event
                    continue
                if int(event.id) <= seen:
                    continue
                yield event
        finally:
            self._subs.discard(sub)


# How long one XREAD waits for new events. It must stay below the client's socket timeout
# (redis-py 8 defaults to 5 s): a 5 s block timed out on every quiet period, and each error cost
# a 1 s pause in which live events from other processes waited.
READ_BLOCK_MS = 2000


class RedisBus(_LocalFanout):
    STREAM = "tidings:events"

    def __init__(self, url: str) -> None:
        super().__init__()
        from redis.asyncio import Redis

        self._redis: Redis = Redis.from_url(url)
        # Runs only while this process has subscribers (SSE clients): a worker process has
        # none, and decoding every live event of a broadcast cost it 5-8 % of its event loop
        # (docs/benchmarks.md, "Broadcast storm").
        self._reader: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()

    @property
    def reading(self) -> bool:
        """Whether the stream reader runs (only while there are local subscribers)."""
        return self._reader is not None

    async def start(self) -> None:
        await self._redis.ping()

    async def _ensure_reader(self) -> None:
        """Start the reader from the stream's newest entry, before the caller registers: what
        is published from then on reaches it (a resume reads what came before with XRANGE)."""
        async with self._starting:
            if self._reader is not None:
                return
            newest: Any = await self._redis.xrevrange(self.STREAM, count=1)
            last = newest[0][0].decode() if newest else "0-0"
            self._reader = asyncio.create_task(self._read_loop(last), name="redis-bus-reader")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self.close_all()
        await self._redis.aclose()

    async def publish(self, events: list[LiveEvent]) -> None:
        if not events:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(self.STREAM, {"e": event.encode()}, maxlen=HISTORY, approximate=True)
            await pipe.execute()

    async def _read_loop(self, last: str) -> None:
        while True:
            if not self._subs:
                # The last subscriber left (checked and cleared without a pause in between, so
                # a new subscriber either finds this reader running or starts another).
                self._reader = None
                return
            try:
                resp = await self._redis.xread({self.STREAM: last}, block=READ_BLOCK_MS, count=500)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis bus read failed; retrying")
                await asyncio.sleep(1)
                continue
            streams: Any = resp or []
            for _stream, entries in streams:
                for entry_id, fields in entries:
                    eid = entry_id.decode()
                    last = eid
                    self.fan_out(LiveEvent.decode(eid, fields[b"e"]))

    async def subscribe(
        self, last_event_id: str | None, idle: float | None = None
    ) -> AsyncIterator[LiveEvent]:
        sub = Subscription()
        await self._ensure_reader()
        self._subs.add(sub)
        try:
            seen: tuple[int, int] | None = None
            if last_event_id and _stream_id(last_event_id) is not None:
                entries: Any = await self._redis.xrange(
                    self.STREAM, min="(" + last_event_id, count=HISTORY
                )
                for entry_id, fields in entries:
                    eid = entry_id.decode()
                    seen = _stream_id(eid)
                    yield LiveEvent.decode(eid, fields[b"e"])
                if seen is None:
                    seen = _stream_id(last_event_id)
            async for event in self._drain(sub, idle):
                if event is IDLE:
                    yield event
                    continue
                sid = _stream_id(event.id)
                if seen is not None and sid is not None and sid <= seen:
                    continue
                yield event
        finally:
            self._subs.discard(sub)


def _stream_id(value: str) -> tuple[int, int] | None:
    ms, _, seq = value.partition("-")
    if not ms.isdigit() or not seq.isdigit():
        return None
    return int(ms), int(seq)


def make_bus(redis_url: str | None) -> EventBus:
    if redis_url:
        return RedisBus(redis_url)
    return MemoryBus()
