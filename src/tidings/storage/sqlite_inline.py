"""The SQLite write connection, run on the event loop's thread instead of aiosqlite's.

aiosqlite runs every statement in a helper thread: a queue hop there and a future back, each
fighting the event loop for the GIL. The ingest worker runs about fifteen small statements per
inbound event, and those hops, not SQLite, were most of its cost (bench/ingest/worker_cost).
SQLite answers a statement on an open write transaction from its page cache in microseconds,
so this connection executes statements directly on the loop's thread. Only the two steps that
can wait go elsewhere:

- COMMIT (the fsync, milliseconds with `synchronous=FULL`) runs in a thread, so the loop keeps
  serving while the disk syncs;
- BEGIN IMMEDIATE never waits inside SQLite's busy handler (which would block the loop): when
  another process holds the write lock, it is retried with short asyncio sleeps for up to
  `busy_timeout` seconds, then fails as SQLite would ("database is locked").

It offers the small part of aiosqlite's interface that SQLAlchemy's aiosqlite dialect uses
(`async_creator` of `create_async_engine`); reads keep using aiosqlite, since a long read on
the loop's thread would stall every request.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

MAX_BEGIN_WAIT = 10.0


class _Cursor:
    def __init__(self, conn: InlineConnection) -> None:
        self._owner = conn
        self._cursor = conn._conn.cursor()
        self.arraysize = 1

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> _Cursor:
        head = sql.lstrip()[:16].upper()
        if head.startswith("BEGIN"):
            await self._owner._begin(self._cursor, sql)
        elif head.startswith("COMMIT"):
            await self._owner.commit()
        elif parameters is None:
            self._cursor.execute(sql)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> _Cursor:
        self._cursor.executemany(sql, seq)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def setinputsizes(self, *sizes: Any) -> None:
        return None

    async def nextset(self) -> None:
        return None


class _Queue:
    """What SQLAlchemy's isolation-level setter hands work to (aiosqlite's thread queue)."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class InlineConnection:
    def __init__(self, conn: sqlite3.Connection, busy_timeout: float) -> None:
        self._conn = conn
        self._connection: sqlite3.Connection | None = conn
        self._tx = _Queue()
        self._busy_timeout = busy_timeout

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> _Cursor:
        return _Cursor(self)

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> _Cursor:
        return await self.cursor().execute(sql, parameters)

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)

    async def _begin(self, cursor: sqlite3.Cursor, sql: str) -> None:
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.001
        while True:
            try:
                cursor.execute(sql)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def commit(self) -> None:
        if not self._conn.in_transaction:
            return
        # The fsync happens here: in a thread, while the loop goes on. Nothing else uses the
        # connection meanwhile (SQLAlchemy awaits this before the next statement).
        await asyncio.to_thread(self._conn.execute, "COMMIT")

    async def rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    async def close(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()


def connector(path: str, busy_timeout: float = MAX_BEGIN_WAIT) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine("sqlite+aiosqlite://...")`."""

    async def connect() -> InlineConnection:
        # Busy waits happen in `_begin` (with asyncio sleeps), never inside SQLite.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
        return InlineConnection(conn, busy_timeout)

    return connect
