"""Which worker loops a process runs (`TIDINGS_WORKERS`), and starting them: `tidings serve`
starts them in the web process unless `TIDINGS_RUN_WORKERS=0`; `tidings worker` runs only them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, Protocol, runtime_checkable

from tidings.actions import templates as template_sync
from tidings.automation import engine as automation
from tidings.campaigns import fanout
from tidings.channels.registry import get_adapter, kinds
from tidings.config import Settings
from tidings.delivery import fallback, outgoing_webhooks
from tidings.delivery import worker as delivery
from tidings.domain.enums import InboundLane
from tidings.ingest import worker as ingest
from tidings.media import worker as media
from tidings.reports import rollup as report_rollup
from tidings.runtime import Runtime
from tidings.storage.db import BACKGROUND_WRITER
from tidings.workers import assignment, profiles

WORKERS: dict[str, Callable[[Runtime], Coroutine[Any, Any, None]]] = {
    "ingest": ingest.run,
    "delivery": delivery.run,
    "webhooks": outgoing_webhooks.run,
    "campaigns": fanout.run,
    "fallback": fallback.run,
    "reports": report_rollup.run,
    "automation": automation.run,
    "assignment": assignment.run,
    "templates": template_sync.run,
    "media": media.run,
    "profiles": profiles.run,
}
# One inbound lane each, for processes per lane on PostgreSQL (docs/architecture.md, "Lanes").
# Only by name: `ingest` (in every default set) already runs both lanes in one loop, which on
# SQLite is the loop that puts customers first.
LANE_WORKERS: dict[str, Callable[[Runtime], Coroutine[Any, Any, None]]] = {
    "ingest-customer": partial(ingest.run, lanes=(InboundLane.CUSTOMER,)),
    "ingest-status": partial(ingest.run, lanes=(InboundLane.STATUS,)),
}


@runtime_checkable
class SessionChannel(Protocol):
    """An adapter whose channels hold a long-lived connection instead of webhooks (SMPP binds):
    worker processes run `run_sessions(rt)`, which keeps one session per active channel."""

    def run_sessions(self, rt: Runtime) -> Coroutine[Any, Any, None]: ...


# `TIDINGS_WORKERS` may also name this: the long-lived provider sessions (SMPP binds).
SESSIONS = "sessions"


# Named layouts for PostgreSQL (docs/operations.md, "Sizing the lanes"). With two worker
# processes, one runs `inbound` (the lanes' loop alone) and the other `background` (every other
# loop): a process running every loop gave the lanes about a tenth of its event loop, and the
# customer lane fell seconds behind during a broadcast (docs/benchmarks.md, "Broadcast storm").
WORKER_SETS: dict[str, tuple[str, ...]] = {
    "inbound": ("ingest",),
    "background": (*(name for name in WORKERS if name != "ingest"), SESSIONS),
}


def chosen_workers(settings: Settings) -> list[str]:
    """The worker loops this process runs: all, or those `TIDINGS_WORKERS` names, loops or
    `WORKER_SETS` (an unknown name is a configuration error, not a silently idle worker).
    Naming `ingest` with a lane, or both lanes, runs the one loop over both lanes (`ingest`):
    two loops in one process would compete for the write lock instead of putting customers
    first."""
    known = [*WORKERS, SESSIONS, *LANE_WORKERS]
    if settings.workers is None:
        return [*WORKERS, SESSIONS]
    unknown = sorted(settings.workers - set(known) - set(WORKER_SETS))
    if unknown:
        raise ValueError(
            f"TIDINGS_WORKERS names unknown workers {', '.join(unknown)}; known: "
            f"{', '.join([*known, *WORKER_SETS])}"
        )
    names = set(settings.workers) - set(WORKER_SETS)
    for layout in settings.workers & set(WORKER_SETS):
        names |= set(WORKER_SETS[layout])
    if "ingest" in names or set(LANE_WORKERS) <= names:
        names = (names - set(LANE_WORKERS)) | {"ingest"}
    return [name for name in known if name in names]


# The loops whose writes never give way to a customer's event (`storage.db.PriorityHold`): the
# inbound lanes themselves.
INBOUND_LOOPS = frozenset({"ingest", *LANE_WORKERS})


async def _background(loop: Coroutine[Any, Any, None]) -> None:
    """Run a background loop whose SQLite writes wait for a customer's event in flight."""
    BACKGROUND_WRITER.set(True)
    await loop


def start_workers(rt: Runtime) -> None:
    chosen = chosen_workers(rt.settings)
    loops = {**WORKERS, **LANE_WORKERS}
    for name in chosen:
        if name in loops:
            loop = loops[name](rt)
            rt.spawn(loop if name in INBOUND_LOOPS else _background(loop), name=f"worker-{name}")
    if SESSIONS not in chosen:
        return
    for kind in kinds():
        adapter = get_adapter(kind)
        if isinstance(adapter, SessionChannel):
            rt.spawn(adapter.run_sessions(rt), name=f"sessions-{kind}")


async def run_forever(settings: Settings) -> None:
    """`tidings worker`: this process runs only the worker loops."""
    rt = Runtime(settings)
    await rt.start()
    start_workers(rt)
    try:
        await asyncio.Event().wait()
    finally:
        await rt.stop()
