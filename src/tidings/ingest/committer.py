"""Group commit for webhook events.

Each webhook request hands its rows to the committer and waits. One task drains everything
that queued up meanwhile and inserts it in a single transaction, so N concurrent requests cost
one commit (one fsync) instead of N, and every request is answered only after its rows are on
disk. Duplicates are rejected by the unique (channel_id, event_key) index, never by a cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from tidings.metrics import EVENTS_STORED
from tidings.storage.db import Database
from tidings.storage.models import InboundEvent

log = logging.getLogger(__name__)

# Bound one transaction so a burst cannot build a statement of unbounded size.
MAX_ROWS_PER_COMMIT = 2_000


class GroupCommitter:
    def __init__(self, db: Database, on_commit: Callable[[], None]) -> None:
        self._db = db
        self._on_commit = on_commit
        self._pending: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        table = InboundEvent.__table__
        self._stmt = db.insert(table).on_conflict_do_nothing(
            index_elements=[table.c.channel_id, table.c.event_key]
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ingest-group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _rows, fut in self._pending:
            if not fut.done():
                fut.set_exception(RuntimeError("shutting down"))

    async def submit(self, rows: list[dict[str, Any]]) -> None:
        """Return once `rows` are committed; raise if the commit failed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, fut))
        self._wake.set()
        await fut

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
                count = 0
                while self._pending and (count == 0 or count < MAX_ROWS_PER_COMMIT):
                    item = self._pending.pop(0)
                    batch.append(item)
                    count += len(item[0])
                await self._commit(batch)

    async def _commit(self, batch: list[tuple[list[dict[str, Any]], asyncio.Future[None]]]) -> None:
        rows = [row for item, _fut in batch for row in item]
        try:
            async with self._db.write_engine.begin() as conn:
                await conn.execute(self._stmt, rows)
        except Exception as exc:
            log.exception("group commit of %d inbound events failed", len(rows))
            for _rows, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        EVENTS_STORED.inc(len(rows))
        for _rows, fut in batch:
            if not fut.done():
                fut.set_result(None)
        self._on_commit()
