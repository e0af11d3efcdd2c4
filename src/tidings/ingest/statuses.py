"""The status lane's batch processor: delivery receipts (sent, delivered, read, failed), applied
as a set through the one status path, `actions.statuses.do_apply_statuses`
(docs/architecture.md, "The status path").

Rows are parsed here; the receipts of all of them go to one call, in a savepoint. Rows whose
events are not all receipts (or deliberately ignored) take the per-event path
(`ingest/rows.py`), as do all of a chunk's rows when the set fails: each is then applied alone
in its own savepoint, so one bad event never fails or delays the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sqlalchemy import update

from tidings.actions.base import Tx
from tidings.actions.statuses import StatusReport, do_apply_statuses
from tidings.domain.enums import InboundState
from tidings.domain.events import Ignored, StatusUpdate
from tidings.ingest.rows import batch_touches, process_rows, retry_later
from tidings.metrics import INGESTED
from tidings.storage.models import InboundEvent, table_of
from tidings.storage.types import utcnow

log = logging.getLogger(__name__)

# Rows applied as one set. The worker hands over at most its batch; larger chunks than this
# gain little (the statements' cost is per row by then) and hold the write lock longer.
CHUNK = 1000


async def apply_status_rows(
    tx: Tx, rows: Sequence[InboundEvent], should_yield: Callable[[], bool]
) -> int:
    """Apply a batch of status-lane rows, setting each row's state. Returns how many rows were
    handled (the rest are left untouched for the next round)."""
    handled = 0
    async with batch_touches(tx):  # a stray message among receipts: its channel at the end
        for start in range(0, len(rows), CHUNK):
            if start and should_yield():
                break
            chunk = rows[start : start + CHUNK]
            await _apply_chunk(tx, chunk)
            handled += len(chunk)
    return handled


async def _apply_chunk(tx: Tx, rows: Sequence[InboundEvent]) -> None:
    reports: list[StatusReport] = []
    owner: list[int] = []  # reports[i] came from rows[owner[i]]
    receipts: list[int] = []  # rows whose events are all receipts (or ignored)
    others: list[InboundEvent] = []
    for index, row in enumerate(rows):
        channel = await tx.rt.channels.get(row.channel_id)
        if channel is None:
            others.append(row)  # the per-event path fails it with the reason
            continue
        try:
            events = channel.adapter.parse(channel.config, row.payload)
        except Exception:
            others.append(row)  # fails again there, alone, with its error
            continue
        if not all(isinstance(e, StatusUpdate | Ignored) for e in events):
            others.append(row)
            continue
        receipts.append(index)
        for event in events:
            if isinstance(event, StatusUpdate):
                reports.append(StatusReport.of(row.channel_id, event))
                owner.append(index)
    if receipts:
        try:
            async with tx.session.begin_nested():
                applied = await do_apply_statuses(tx, reports)
        except Exception:
            log.warning(
                "a set of %d receipts failed; applying them one by one", len(reports), exc_info=True
            )
            others.extend(rows[i] for i in receipts)
        else:
            waiting = {
                owner[i]: f"no message with provider id {reports[i].provider_message_id} yet"
                for i in applied.unknown
            }
            await _mark(tx, rows, receipts, waiting)
    if others:
        others.sort(key=lambda r: (r.occurred_at, r.id))
        # The per-event path never yields before its first row; it is given the whole rest.
        await process_rows(tx, others, lambda: False)


async def _mark(
    tx: Tx, rows: Sequence[InboundEvent], applied: list[int], waiting: dict[int, str]
) -> None:
    """Rows applied: done, in one UPDATE. Rows with a receipt for a message not known yet: kept
    for a bounded retry (`retry_later`), then failed with the reason — visible, replayable."""
    done_ids = []
    for index in applied:
        row = rows[index]
        if index in waiting:
            row.attempts += 1
            retry_later(row, waiting[index])
        else:
            done_ids.append(row.id)
    if done_ids:
        # Core, not the rows' ORM objects: one statement instead of a flush of each.
        t = table_of(InboundEvent)
        await tx.session.execute(
            update(t)
            .where(t.c.id.in_(done_ids))
            .values(
                state=InboundState.DONE,
                error=None,
                processed_at=utcnow(),
                attempts=t.c.attempts + 1,
            )
        )
        INGESTED.labels("done").inc(len(done_ids))
