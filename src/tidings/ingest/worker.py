"""The ingest worker: turns stored inbound events into contacts, conversations, messages and
status changes, in provider-timestamp order, each event isolated in a savepoint.

A failing event is kept with its error (state `failed`) and can be replayed after a fix;
an event that cannot be applied *yet* (a receipt ahead of its message) is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import select, update

from tidings.actions.base import transaction
from tidings.domain.enums import InboundLane, InboundState
from tidings.ingest.messages import apply_customer_rows
from tidings.ingest.statuses import apply_status_rows
from tidings.runtime import Runtime
from tidings.storage.models import InboundEvent
from tidings.storage.types import utcnow

log = logging.getLogger(__name__)

BATCH = 100
IDLE_POLL_SECONDS = 0.5
# Turn-taking with webhook acknowledgements (what providers time): once webhooks are waiting for
# the group commit and the worker has spent SLICE_SECONDS on a batch, it commits what it has,
# gives the write lock back and waits (at most ACK_TURN_SECONDS) until those webhooks are
# committed before it goes on. It never rests otherwise: a fixed pause under any traffic
# capped processing at a fraction of the loop and let the agents' view fall seconds behind at
# only 50 messages/s (bench/latency).
SLICE_SECONDS = 0.01
ACK_TURN_SECONDS = 0.05


async def process_batch(rt: Runtime, limit: int = BATCH) -> bool:
    """Process up to `limit` due events. Returns whether more may be waiting."""
    return (await _process_batch(rt, limit))[0]


async def _process_batch(rt: Runtime, limit: int) -> tuple[bool, bool]:
    """Returns (more may be waiting, stopped early because webhooks were waiting)."""
    now = utcnow()
    due = (InboundEvent.state == InboundState.PENDING) & (InboundEvent.next_attempt_at <= now)
    if not await rt.db.has_rows(select(InboundEvent.id).where(due)):
        return False, False
    async with transaction(rt) as tx:
        rows = (
            await tx.session.scalars(
                select(InboundEvent)
                .where(due)
                .order_by(InboundEvent.occurred_at, InboundEvent.id)
                .limit(limit)
                .with_for_update(**rt.db.skip_locked())
            )
        ).all()
        more = len(rows) == limit
        started = time.monotonic()

        def should_yield() -> bool:
            # Acknowledging webhooks comes first: give the write lock back (SQLite has one
            # writer) and let the untouched rest of the batch wait for the next round.
            return bool(rt.committer.waiting) and time.monotonic() - started > SLICE_SECONDS

        customer = [r for r in rows if r.lane != InboundLane.STATUS]
        receipts = [r for r in rows if r.lane == InboundLane.STATUS]
        handled = await apply_customer_rows(tx, customer, should_yield)
        yielded = handled < len(customer)
        if not yielded and receipts:
            handled = await apply_status_rows(tx, receipts, should_yield)
            yielded = handled < len(receipts)
        more = more or yielded
    return more, yielded


async def replay(
    rt: Runtime, *, event_ids: list[int] | None = None, channel_id: int | None = None
) -> int:
    """Put failed events back in the queue (after a fix). Returns how many."""
    stmt = update(InboundEvent).where(InboundEvent.state == InboundState.FAILED)
    if event_ids:
        stmt = stmt.where(InboundEvent.id.in_(event_ids))
    if channel_id is not None:
        stmt = stmt.where(InboundEvent.channel_id == channel_id)
    async with rt.db.write() as s:
        result = await s.execute(
            stmt.values(
                state=InboundState.PENDING, attempts=0, next_attempt_at=utcnow(), error=None
            )
        )
    rt.wake("ingest")
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def run(rt: Runtime) -> None:
    while True:
        try:
            more, yielded = await _process_batch(rt, BATCH)
            if yielded:
                await rt.committer.drained(ACK_TURN_SECONDS)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ingest batch failed; retrying")
            await asyncio.sleep(1.0)
            continue
        if not more:
            await rt.wait_for_work("ingest", IDLE_POLL_SECONDS)
