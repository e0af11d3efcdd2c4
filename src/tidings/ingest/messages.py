"""The customer lane's batch processor: messages, edits, reactions, opt-outs, postbacks and
channel events — what a person is waiting for.

Today each event goes through the per-event path (`ingest/rows.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tidings.actions.base import Tx
from tidings.ingest.rows import process_rows
from tidings.storage.models import InboundEvent


async def apply_customer_rows(
    tx: Tx, rows: Sequence[InboundEvent], should_yield: Callable[[], bool]
) -> int:
    """Apply a batch of customer-lane rows, setting each row's state. Returns how many rows
    were handled (the rest are left untouched for the next round)."""
    return await process_rows(tx, rows, should_yield)
