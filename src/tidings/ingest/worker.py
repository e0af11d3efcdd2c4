"""The ingest worker: turns stored inbound events into contacts, conversations, messages and
status changes, in provider-timestamp order, each event isolated in a savepoint.

A failing event is kept with its error (state `failed`) and can be replayed after a fix;
an event that cannot be applied *yet* (a receipt ahead of its message) is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from tidings.actions.base import transaction
from tidings.actions.channel_events import ChannelEvent, do_apply_channel_event
from tidings.actions.inbound import RetryLater, do_apply_status, do_receive_message
from tidings.domain.enums import InboundState
from tidings.domain.events import Ignored, InboundMessage, StatusUpdate
from tidings.logs import CHANNEL_ID
from tidings.metrics import INGESTED
from tidings.runtime import Runtime
from tidings.storage.models import Channel, InboundEvent
from tidings.storage.types import utcnow

log = logging.getLogger(__name__)

BATCH = 100
MAX_RETRY_LATER = 8
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
    yielded = False
    now = utcnow()
    due = (InboundEvent.state == InboundState.PENDING) & (InboundEvent.next_attempt_at <= now)
    if not await rt.db.has_rows(select(InboundEvent.id).where(due)):
        return False, False
    async with transaction(rt) as tx:
        s = tx.session
        rows = (
            await s.scalars(
                select(InboundEvent)
                .where(due)
                .order_by(InboundEvent.occurred_at, InboundEvent.id)
                .limit(limit)
                .with_for_update(**rt.db.skip_locked())
            )
        ).all()
        latest_inbound: dict[int, datetime] = {}
        more = len(rows) == limit
        started = time.monotonic()
        for index, row in enumerate(rows):
            if index and rt.committer.waiting and time.monotonic() - started > SLICE_SECONDS:
                # Acknowledging webhooks comes first: give the write lock back (SQLite has
                # one writer) and let the untouched rest of the batch wait for the next round.
                more = yielded = True
                break
            CHANNEL_ID.set(row.channel_id)  # log lines name the channel (tidings/logs.py)
            channel = await rt.channels.get(row.channel_id)
            row.attempts += 1
            if channel is None:
                row.state, row.error = InboundState.FAILED, "channel no longer exists"
                continue
            try:
                async with s.begin_nested():
                    for event in channel.adapter.parse(channel.config, row.payload):
                        if isinstance(event, InboundMessage):
                            await do_receive_message(tx, channel, event)
                            if not event.echo:
                                latest_inbound[channel.id] = event.occurred_at
                        elif isinstance(event, StatusUpdate):
                            await do_apply_status(tx, channel, event)
                        elif isinstance(event, Ignored):
                            log.debug("ignored event %s: %s", row.event_key, event.reason)
                        elif isinstance(event, ChannelEvent):
                            await do_apply_channel_event(tx, channel, event)
            except RetryLater as exc:
                # The savepoint rolled back this event's partial work; try again shortly.
                INGESTED.labels("retry_later").inc()
                if row.attempts >= MAX_RETRY_LATER:
                    row.state, row.error = InboundState.FAILED, str(exc)
                else:
                    delay = min(60.0, 0.5 * 2**row.attempts) * random.uniform(0.8, 1.2)
                    row.next_attempt_at = utcnow() + timedelta(seconds=delay)
                    row.error = str(exc)
                continue
            except Exception as exc:
                log.warning("inbound event %s failed: %s", row.id, exc, exc_info=True)
                row.state, row.error = InboundState.FAILED, f"{type(exc).__name__}: {exc}"
                INGESTED.labels("failed").inc()
                continue
            row.state, row.error, row.processed_at = InboundState.DONE, None, utcnow()
            INGESTED.labels("done").inc()
        CHANNEL_ID.set(None)
        for channel_id, at in latest_inbound.items():
            await s.execute(
                update(Channel)
                .where(
                    Channel.id == channel_id,
                    or_(Channel.last_inbound_at.is_(None), Channel.last_inbound_at < at),
                )
                .values(last_inbound_at=at)
            )
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
