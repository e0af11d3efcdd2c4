"""The lag gauge: how far behind the ingest worker is, per lane.

A lane's lag is the age of its oldest *due* pending inbound event (state `pending`,
`next_attempt_at <= now`): how long that event has been ready and not processed. An event
waiting out a retry backoff is not late until it is due again, so its lag counts from
`next_attempt_at`, which for a fresh event is the moment it was stored. Zero when the lane is
empty.

One grouped query over (lane, state, next_attempt_at) (migration 0016_inbound_lane) reads both
lanes; each process runs it at most once per CACHE_SECONDS however many agents, scrapes and
doctors ask, so the banner in every open inbox never becomes a query per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from tidings.domain.enums import InboundLane, InboundState
from tidings.storage.db import Database
from tidings.storage.models import InboundEvent
from tidings.storage.types import as_utc, utcnow

LANES = (InboundLane.CUSTOMER, InboundLane.STATUS)
CACHE_SECONDS = 1.0
# The agent UI's banner shows once the customer lane is this far behind (docs/operations.md).
CUSTOMER_WARN_SECONDS = 5.0
# `tidings doctor` warns over this, per lane.
DOCTOR_WARN_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class LaneLag:
    lane: str
    seconds: float  # age of the oldest due pending event; 0.0 when there is none
    pending: int  # due pending events


async def measure(db: Database) -> dict[str, LaneLag]:
    """Read both lanes now (uncached): one grouped query."""
    now = utcnow()
    due = (InboundEvent.state == InboundState.PENDING) & (InboundEvent.next_attempt_at <= now)
    stmt = (
        select(InboundEvent.lane, func.count(), func.min(InboundEvent.next_attempt_at))
        .where(due)
        .group_by(InboundEvent.lane)
    )
    async with db.read() as s:
        rows = (await s.execute(stmt)).all()
    found = {str(lane): (int(count), as_utc(oldest)) for lane, count, oldest in rows}
    out: dict[str, LaneLag] = {}
    for lane in LANES:
        count, oldest = found.pop(lane, (0, None))
        seconds = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        out[lane] = LaneLag(lane, round(seconds, 3), count)
    # A lane this code does not know (a newer process wrote it) is counted as a customer's.
    for count, oldest in found.values():
        extra = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        c = out[InboundLane.CUSTOMER]
        out[InboundLane.CUSTOMER] = LaneLag(
            c.lane, round(max(c.seconds, extra), 3), c.pending + count
        )
    return out


class LagGauge:
    """The per-process cache in front of `measure`: at most one query per CACHE_SECONDS;
    concurrent readers share the one in flight."""

    def __init__(
        self,
        db: Database,
        max_age: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._max_age = max_age
        self._clock = clock
        self._value: dict[str, LaneLag] | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    def _fresh(self) -> dict[str, LaneLag] | None:
        if self._value is not None and self._clock() - self._at < self._max_age:
            return self._value
        return None

    async def read(self) -> dict[str, LaneLag]:
        if (value := self._fresh()) is not None:
            return value
        async with self._lock:
            if (value := self._fresh()) is not None:
                return value
            self._value = await measure(self._db)
            self._at = self._clock()
            return self._value
