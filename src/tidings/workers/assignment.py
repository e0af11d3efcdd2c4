"""The assignment and SLA worker: drains auto-assignment queues and records SLA breaches.

Woken after commit by anything that may move a queue or start a timer (a new or reopened
conversation, a resolve, an agent coming online, a settings change); otherwise it sleeps until
the earliest running SLA timer falls due, at most `SWEEP_SECONDS`, so that work a crash left
behind is still done. Safe to run in several processes: drains lock the inbox's settings row,
the sweep claims conversations with SKIP LOCKED.
"""

from __future__ import annotations

import asyncio
import logging

from tidings.actions import assignment, sla
from tidings.domain.enums import Queue
from tidings.runtime import Runtime
from tidings.storage.types import utcnow

log = logging.getLogger(__name__)

SWEEP_SECONDS = 5.0


async def tick(rt: Runtime) -> None:
    while await sla.sweep(rt) == sla.SWEEP_BATCH:
        pass
    await assignment.drain_all(rt)


async def run(rt: Runtime) -> None:
    while True:
        try:
            await tick(rt)
            due = await sla.next_due(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("assignment/SLA sweep failed; retrying")
            await asyncio.sleep(1.0)
            continue
        wait = SWEEP_SECONDS
        if due is not None:
            wait = min(wait, max(0.05, (due - utcnow()).total_seconds() + 0.01))
        await rt.wait_for_work(Queue.ASSIGNMENT, wait)
