"""The one polling loop that the batch workers share.

`step` claims and handles one batch and says whether more may be waiting. The loop runs it
again at once while it does; otherwise it waits `idle` seconds, or less when `queue` is woken
(after the commit of a change that gave it work, in this process or through Redis in
another). A failed batch is logged and retried after a second: a worker never dies of one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tidings.domain.enums import Queue
from tidings.runtime import Runtime

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


async def poll(
    rt: Runtime,
    step: Callable[[Runtime], Awaitable[bool]],
    *,
    queue: Queue | None,
    idle: float,
    what: str,
) -> None:
    """Run `step` until cancelled (see the module docstring); `what` names it in the log."""
    while True:
        try:
            more = await step(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; retrying", what)
            await asyncio.sleep(RETRY_SECONDS)
            continue
        if more:
            continue
        if queue is None:
            await asyncio.sleep(idle)
        else:
            await rt.wait_for_work(queue, idle)
