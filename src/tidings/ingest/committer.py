"""Group commit for webhook events.

Each webhook request hands its rows to the committer and waits. One task drains everything
that queued up meanwhile and inserts it in a single transaction, so N concurrent requests cost
one commit (one fsync) instead of N, and every request is answered only after its rows are on
disk. Duplicates are rejected by the unique (channel_id, event_key) index, never by a cache.
Webhooks carrying a customer's event are committed ahead of queued receipts (`submit`).

On SQLite the insert runs on a raw `sqlite3` connection in one dedicated thread: a commit is a
single hop into that thread (BEGIN IMMEDIATE, executemany, COMMIT) instead of a round trip per
statement through the async driver, which is what bounds webhook throughput. It takes the
process's write turn ahead of every other waiting writer (`writer_turn(first=True)`), the
ingest worker gives the write lock back after a short slice once `waiting` is true, and the
WAL is checkpointed off the acknowledgement path (docs/architecture.md, "The acknowledgement
path").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tidings.domain.enums import InboundLane
from tidings.metrics import EVENTS_STORED, GROUP_COMMIT
from tidings.storage.db import Database, sqlite_path
from tidings.storage.models import InboundEvent

log = logging.getLogger(__name__)

# Bound one transaction so a burst cannot build a statement of unbounded size.
MAX_ROWS_PER_COMMIT = 2_000
COMMIT_WAIT = GROUP_COMMIT.labels("wait")
COMMIT_TIME = GROUP_COMMIT.labels("commit")
# How often (at most) the committer has the WAL checkpointed while it commits.
CHECKPOINT_SECONDS = 0.5

COLUMNS = (
    "workspace_id",
    "channel_id",
    "event_key",
    "payload",
    "occurred_at",
    "received_at",
    "state",
    "attempts",
    "next_attempt_at",
    "error",
    "lane",
)


_MISSING = object()


def _sqlite_time(value: datetime | None) -> str | None:
    # The exact text SQLAlchemy's SQLite DateTime stores (UTC, naive), so that comparisons and
    # ordering against rows written through the ORM stay right.
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class SqliteInserter:
    """The inbound-event insert on its own connection and thread (SQLite only)."""

    SQL = (
        "INSERT INTO inbound_event (workspace_id, channel_id, event_key, payload, occurred_at, "
        "received_at, state, attempts, next_attempt_at, error, lane) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel_id, event_key) DO NOTHING"
    )

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="tidings-commit")
        # Checkpoints of the WAL, off the acknowledgement path (see _maybe_checkpoint).
        self._ckpt_conn: sqlite3.Connection | None = None
        self._ckpt_thread = ThreadPoolExecutor(1, thread_name_prefix="tidings-checkpoint")
        self._ckpt_running = False
        self._ckpt_last = time.monotonic()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
            # This connection never checkpoints: SQLite's automatic checkpoint runs inside the
            # COMMIT that crosses 1,000 WAL pages, so one group of webhooks in a few hundred
            # would wait for the database file to be written and synced as well.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._conn = conn
        return self._conn

    def _checkpoint(self) -> None:
        if self._ckpt_conn is None:
            self._ckpt_conn = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False
            )
            self._ckpt_conn.execute("PRAGMA busy_timeout=10000")
        # PASSIVE: copies what it can without waiting for readers or writers, so commits go
        # on meanwhile; the next writer after a complete pass restarts the WAL from the top.
        self._ckpt_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _maybe_checkpoint(self) -> None:
        """After a commit: at most every CHECKPOINT_SECONDS, checkpoint the WAL on a thread of
        its own, not awaited (the other connections of the process still checkpoint on their
        own commits; this keeps the WAL bounded when only webhooks write)."""
        now = time.monotonic()
        if self._ckpt_running or now - self._ckpt_last < CHECKPOINT_SECONDS:
            return
        self._ckpt_running, self._ckpt_last = True, now

        def finished(fut: Future[None]) -> None:
            self._ckpt_running = False
            if not fut.cancelled() and fut.exception() is not None:
                log.warning("WAL checkpoint failed: %s", fut.exception())

        self._ckpt_thread.submit(self._checkpoint).add_done_callback(finished)

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(self.SQL, rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    async def insert(self, rows: list[dict[str, Any]]) -> None:
        # A request's rows share one `now` (received_at, next_attempt_at): format each distinct
        # time once, not three times per row.
        times: dict[datetime | None, str | None] = {None: None}

        def text(value: datetime | None) -> str | None:
            found = times.get(value, _MISSING)
            if found is _MISSING:
                found = times[value] = _sqlite_time(value)
            return found  # type: ignore[return-value]

        params = [
            (
                row["workspace_id"],
                row["channel_id"],
                row["event_key"],
                row["payload"],
                text(row["occurred_at"]),
                text(row["received_at"]),
                row["state"],
                row["attempts"],
                text(row["next_attempt_at"]),
                row["error"],
                row["lane"],
            )
            for row in rows
        ]
        await asyncio.get_running_loop().run_in_executor(self._thread, self._insert, params)
        self._maybe_checkpoint()

    def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        self._thread.submit(_close).result(timeout=10)
        self._thread.shutdown(wait=True)

        def _close_ckpt() -> None:
            if self._ckpt_conn is not None:
                self._ckpt_conn.close()
                self._ckpt_conn = None

        self._ckpt_thread.submit(_close_ckpt).result(timeout=30)
        self._ckpt_thread.shutdown(wait=True)


class GroupCommitter:
    def __init__(self, db: Database, on_commit: Callable[[], None]) -> None:
        self._db = db
        self._on_commit = on_commit
        self._pending: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
        # Webhooks with a customer-lane event: the priority slot (see `submit`).
        self._urgent: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = False
        self._urgent_in_flight = False
        self._idle = asyncio.Event()  # set whenever the queue of waiting webhooks runs empty
        path = sqlite_path(db.url)
        self._sqlite = SqliteInserter(path) if path is not None else None
        table = InboundEvent.__table__
        self._stmt = db.insert(table).on_conflict_do_nothing(
            index_elements=[table.c.channel_id, table.c.event_key]
        )

    @property
    def customers_waiting(self) -> bool:
        """A webhook with a customer's event is queued or being committed."""
        return bool(self._urgent) or self._urgent_in_flight

    @property
    def waiting(self) -> bool:
        """Webhook requests are waiting for a commit: long writers should yield the lock."""
        return bool(self._pending) or bool(self._urgent) or self._in_flight

    async def drained(self, at_most: float) -> None:
        """Wait (at most `at_most` seconds) until no webhook is waiting for a commit: the
        ingest worker's turn-taking, so acknowledgements go first without a fixed pause."""
        deadline = time.monotonic() + at_most
        while self.waiting and time.monotonic() < deadline:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - time.monotonic()))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ingest-group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _rows, fut in [*self._urgent, *self._pending]:
            if not fut.done():
                fut.set_exception(RuntimeError("shutting down"))
        if self._sqlite is not None:
            self._sqlite.close()

    async def submit(self, rows: list[dict[str, Any]]) -> None:
        """Return once `rows` are committed; raise if the commit failed.

        A webhook with a customer-lane event (a message, an opt-out, ...) takes the priority
        slot: the next commit is of such webhooks alone, ahead of every receipt queued before
        it. During a broadcast thousands of receipts a second queue here; in the common queue a
        customer's message waited for them to be written, in the same big group (the
        customer lane must stay within a second). It still waits for the commit in flight."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        urgent = any(row["lane"] == InboundLane.CUSTOMER for row in rows)
        if urgent:
            self._db.priority.begin()  # background writers wait from now (storage/db.py)
        (self._urgent if urgent else self._pending).append((rows, fut))
        self._wake.set()
        await fut

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._urgent or self._pending:
                urgent = bool(self._urgent)
                queue = self._urgent or self._pending
                batch: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
                count = 0
                while queue and (count == 0 or count < MAX_ROWS_PER_COMMIT):
                    item = queue.pop(0)
                    batch.append(item)
                    count += len(item[0])
                self._urgent_in_flight = urgent
                try:
                    await self._commit(batch)
                finally:
                    self._urgent_in_flight = False
                if urgent:
                    # Again once committed: a worker that looked for customer events before
                    # this commit must not end the hold (its generation is older now).
                    self._db.priority.begin()
            self._idle.set()

    async def _commit(self, batch: list[tuple[list[dict[str, Any]], asyncio.Future[None]]]) -> None:
        rows = [row for item, _fut in batch for row in item]
        self._in_flight = True
        try:
            asked = time.monotonic()
            if self._sqlite is not None:
                async with self._db.writer_turn(first=True):
                    got = time.monotonic()
                    await self._sqlite.insert(rows)
            else:
                async with self._db.write_engine.begin() as conn:
                    got = time.monotonic()
                    await conn.execute(self._stmt, rows)
            COMMIT_WAIT.observe(got - asked)
            COMMIT_TIME.observe(time.monotonic() - got)
        except Exception as exc:
            log.exception("group commit of %d inbound events failed", len(rows))
            for _rows, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        finally:
            self._in_flight = False
        EVENTS_STORED.inc(len(rows))
        for _rows, fut in batch:
            if not fut.done():
                fut.set_result(None)
        self._on_commit()
