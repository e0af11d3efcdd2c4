"""The per-event path of the ingest worker: each stored inbound event parsed and applied in its
own savepoint, so one bad event never fails the others.

The lanes' batch processors (`ingest/statuses.py`, `ingest/messages.py`) fall back to this for
whatever they do not handle as a set, and to isolate an event that failed inside a set.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from weakref import WeakKeyDictionary

from sqlalchemy import or_, update

from tidings.actions.base import Tx
from tidings.actions.channel_events import ChannelEvent, do_apply_channel_event
from tidings.actions.inbound import do_receive_message
from tidings.actions.statuses import do_apply_status
from tidings.domain.enums import InboundState
from tidings.domain.errors import RetryLater
from tidings.domain.events import Ignored, InboundMessage, StatusUpdate
from tidings.logs import CHANNEL_ID
from tidings.metrics import INGESTED
from tidings.storage.models import Channel, InboundEvent
from tidings.storage.types import utcnow

log = logging.getLogger(__name__)

MAX_RETRY_LATER = 8


def retry_later(row: InboundEvent, reason: str) -> None:
    """Keep an event that cannot be applied yet (a receipt ahead of its message) for a bounded
    retry with backoff; after MAX_RETRY_LATER attempts it is failed with the reason."""
    INGESTED.labels("retry_later").inc()
    if row.attempts >= MAX_RETRY_LATER:
        row.state, row.error = InboundState.FAILED, reason
    else:
        delay = min(60.0, 0.5 * 2**row.attempts) * random.uniform(0.8, 1.2)
        row.next_attempt_at = utcnow() + timedelta(seconds=delay)
        row.error = reason


def failed(row: InboundEvent, exc: BaseException) -> None:
    log.warning("inbound event %s failed: %s", row.id, exc, exc_info=exc)
    row.state, row.error = InboundState.FAILED, f"{type(exc).__name__}: {exc}"
    INGESTED.labels("failed").inc()


def done(row: InboundEvent) -> None:
    row.state, row.error, row.processed_at = InboundState.DONE, None, utcnow()
    INGESTED.labels("done").inc()


async def process_rows(
    tx: Tx, rows: Sequence[InboundEvent], should_yield: Callable[[], bool]
) -> int:
    """Apply `rows` one by one, each in a savepoint. Stops early (leaving the rest untouched)
    when `should_yield()` says webhooks are waiting for the write lock. Returns how many rows
    were handled."""
    async with batch_touches(tx):
        return await _process_rows(tx, rows, should_yield)


async def _process_rows(
    tx: Tx, rows: Sequence[InboundEvent], should_yield: Callable[[], bool]
) -> int:
    s = tx.session
    latest_inbound: dict[int, datetime] = {}
    handled = 0
    for index, row in enumerate(rows):
        if index and should_yield():
            break
        handled += 1
        CHANNEL_ID.set(row.channel_id)  # log lines name the channel (tidings/logs.py)
        channel = await tx.rt.channels.get(row.channel_id)
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
            retry_later(row, str(exc))
            continue
        except Exception as exc:
            failed(row, exc)
            continue
        done(row)
    CHANNEL_ID.set(None)
    await touch_channels(tx, latest_inbound)
    return handled


# Inside `batch_touches`: each transaction's channels to move forward, applied at its end.
_deferred: WeakKeyDictionary[Tx, dict[int, datetime]] = WeakKeyDictionary()


@asynccontextmanager
async def batch_touches(tx: Tx) -> AsyncIterator[None]:
    """Collect the batch's `touch_channels` and write them once, when the batch is applied.

    The update locks the channel's row until the transaction commits; written after the first
    run of a claim, it held that row through the rest of the batch (runs of messages, receipts)
    and a second worker's batch on the same channel (PostgreSQL) waited for all of it. At the
    end, the lock lasts from the last write to the commit. Nested uses join the outermost."""
    if tx in _deferred:
        yield
        return
    _deferred[tx] = {}
    try:
        yield
        latest = _deferred[tx]
    finally:
        _deferred.pop(tx, None)
    await touch_channels(tx, latest)


async def touch_channels(tx: Tx, latest_inbound: dict[int, datetime]) -> None:
    """Move each channel's last_inbound_at forward (never back); inside `batch_touches`, at
    the batch's end."""
    deferred = _deferred.get(tx)
    if deferred is not None:
        for channel_id, at in latest_inbound.items():
            if channel_id not in deferred or deferred[channel_id] < at:
                deferred[channel_id] = at
        return
    for channel_id, at in sorted(latest_inbound.items()):  # id order: no lock-order deadlock
        await tx.session.execute(
            update(Channel)
            .where(
                Channel.id == channel_id,
                or_(Channel.last_inbound_at.is_(None), Channel.last_inbound_at < at),
            )
            .values(last_inbound_at=at)
        )
