"""The Redis event bus across a quiet period: its blocking read must not outlast the client's
socket timeout (redis-py 8: 5 s), or every quiet spell ends in an error and a 1 s pause during
which other processes' live events wait."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.conftest import REDIS_URL
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
