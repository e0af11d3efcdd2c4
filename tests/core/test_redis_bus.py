"""The Redis event bus across a quiet period: its blocking read must not outlast the client's
socket timeout (redis-py 8: 5 s), or every quiet spell ends in an error and a 1 s pause during
which other processes' live events wait."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.conftest import REDIS_URL, eventually
from tidings.realtime.bus import LiveEvent, RedisBus

pytestmark = pytest.mark.skipif(REDIS_URL is None, reason="needs TIDINGS_TEST_REDIS_URL")


async def test_quiet_period_then_event_without_read_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert REDIS_URL is not None
    reader, writer = RedisBus(REDIS_URL), RedisBus(REDIS_URL)
    await reader.start()
    await writer.start()
    try:
        received: list[LiveEvent] = []

        async def listen() -> None:
            async for event in reader.subscribe(None):
                if event.type == "test.quiet":
                    received.append(event)
                    return

        task = asyncio.create_task(listen())
        with caplog.at_level(logging.WARNING, logger="tidings.realtime.bus"):
            await asyncio.sleep(6.5)  # longer than redis-py's default socket timeout
            await writer.publish([LiveEvent("test.quiet", 1, None, {"n": 1})])
            await asyncio.wait_for(task, 10)
        assert [e.data for e in received] == [{"n": 1}]
        failures = [r for r in caplog.records if "read failed" in r.getMessage()]
        assert failures == []
    finally:
        await reader.stop()
        await writer.stop()


async def test_a_process_without_subscribers_does_not_read_the_stream() -> None:
    """Worker processes serve no SSE client: their bus must not read and decode every live
    event (5-8 % of a worker's loop during a broadcast). The reader runs from the first
    subscriber on, delivers what is published from then, and stops after the last one left."""
    assert REDIS_URL is not None
    bus, writer = RedisBus(REDIS_URL), RedisBus(REDIS_URL)
    await bus.start()
    await writer.start()
    try:
        await writer.publish([LiveEvent("test.unheard", 1, None, {"n": 0})])
        assert not bus.reading
        received: list[LiveEvent] = []
        subscribed = asyncio.Event()

        async def listen() -> None:
            source = bus.subscribe(None)
            first = asyncio.ensure_future(anext(source))
            while not bus.reading:
                await asyncio.sleep(0)
            subscribed.set()
            event = await first
            while event.type != "test.heard":
                event = await anext(source)
            received.append(event)
            await source.aclose()

        task = asyncio.create_task(listen())
        await subscribed.wait()
        await writer.publish([LiveEvent("test.heard", 1, None, {"n": 1})])
        await asyncio.wait_for(task, 10)
        assert [e.data for e in received] == [{"n": 1}]

        async def stopped() -> bool:
            return not bus.reading

        await eventually(stopped, timeout=10)
    finally:
        await bus.stop()
        await writer.stop()
