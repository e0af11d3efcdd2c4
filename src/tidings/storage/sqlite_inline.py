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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

MAX_BEGIN_WAIT = 10.0
# The longest a run of statements keeps the event loop before letting it serve others once.
SHARE_LOOP_SECONDS = 0.005


class _Cursor:
    def __init__(self, conn: InlineConnection) -> None:
        self._owner = conn
        self._cursor: sqlite3.Cursor | None = None  # made on first use, once no COMMIT runs
        self.arraysize = 1

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def description(self) -> Any:
        return self._cursor.description if self._cursor is not None else None

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount if self._cursor is not None else -1

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid if self._cursor is not None else None

    async def _ready(self) -> sqlite3.Cursor:
        await self._owner._settle()
        if self._cursor is None:
            self._cursor = self._owner._conn.cursor()
        return self._cursor

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> _Cursor:
        await self._owner._share_loop()
        head = sql.lstrip()[:16].upper()
        if head.startswith("COMMIT"):
            await self._owner.commit()
            return self
        cursor = await self._ready()
        if head.startswith("BEGIN") or not self._owner._conn.in_transaction:
            # BEGIN IMMEDIATE, and statements outside a transaction (the connect-time PRAGMAs:
            # journal_mode needs a lock that another connection's COMMIT may still hold) wait
            # for the lock with asyncio sleeps.
            await self._owner._begin(cursor, sql, parameters)
        elif parameters is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> _Cursor:
        await self._owner._share_loop()
        (await self._ready()).executemany(sql, seq)
        return self

    async def fetchone(self) -> Any:
        return (await self._ready()).fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return (await self._ready()).fetchmany(self.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return (await self._ready()).fetchall()

    async def close(self) -> None:
        if self._cursor is not None:
            await self._owner._settle()
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
    """One SQLite connection. Statements run on the loop's thread; COMMIT runs on the
    connection's own single thread. A caller cancelled while its COMMIT is in that thread does
    not stop the COMMIT, so everything that could touch the connection meanwhile (a rollback, a
    close, the next statement) first waits for it or queues behind it on the same thread: the
    connection is never used by two threads at once."""

    def __init__(self, conn: sqlite3.Connection, busy_timeout: float) -> None:
        self._conn = conn
        self._connection: sqlite3.Connection | None = conn
        self._tx = _Queue()
        self._busy_timeout = busy_timeout
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="tidings-sqlite-commit")
        self._in_thread: asyncio.Future[Any] | None = None
        self._shared = time.monotonic()

    async def _share_loop(self) -> None:
        """Let the event loop run once if this connection has kept it for SHARE_LOOP_SECONDS.

        Statements here never suspend, so without this a long write transaction (a batch of
        the ingest worker) would hold the loop from its first statement to its COMMIT:
        webhook requests would not even be read, the group committer would not know they wait,
        and the worker would not give the write lock back to them (docs/architecture.md,
        "The acknowledgement path")."""
        if time.monotonic() - self._shared > SHARE_LOOP_SECONDS:
            await asyncio.sleep(0)
            self._shared = time.monotonic()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> _Cursor:
        return _Cursor(self)

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> _Cursor:
        return await self.cursor().execute(sql, parameters)

    async def create_function(self, *args: Any, **kw: Any) -> None:
        await self._settle()
        self._conn.create_function(*args, **kw)

    def _busy(self) -> bool:
        return self._in_thread is not None and not self._in_thread.done()

    async def _settle(self) -> None:
        """Wait until a COMMIT still running in the thread has finished (whatever its result:
        its caller, if still there, sees that)."""
        while self._busy():
            assert self._in_thread is not None
            await asyncio.wait([self._in_thread])

    async def _on_thread(self, fn: Callable[[], Any]) -> Any:
        future = asyncio.get_running_loop().run_in_executor(self._thread, fn)
        self._in_thread = future
        # shield: a cancelled caller leaves the future (and the thread) to finish.
        return await asyncio.shield(future)

    async def _begin(
        self, cursor: sqlite3.Cursor, sql: str, parameters: Sequence[Any] | None = None
    ) -> None:
        await self._settle()
        deadline = time.monotonic() + self._busy_timeout
        # Retries 1, 2, 4, 5, 5 ... ms apart: another process's write transactions are short, and
        # a longer pause (it went up to 50 ms) let a writer that commits back to back (the report
        # rollup) take the lock again first: a sending process draining a campaign lost ~6 %.
        pause = 0.001
        while True:
            try:
                if parameters is None:
                    cursor.execute(sql)
                else:
                    cursor.execute(sql, parameters)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.005)

    async def commit(self) -> None:
        await self._settle()
        if not self._conn.in_transaction:
            return
        # The fsync happens here, on the connection's thread, while the loop goes on.
        await self._on_thread(lambda: self._conn.execute("COMMIT"))

    async def rollback(self) -> None:
        if self._busy():
            # Queued behind the COMMIT on the same thread; a no-op if the COMMIT succeeded.
            await self._on_thread(self._rollback_if_open)
        else:
            self._rollback_if_open()

    def _rollback_if_open(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is None:
            return
        self._connection = None
        # Closed on the connection's thread, after anything still running there.
        self._thread.submit(self._conn.close)
        self._thread.shutdown(wait=False)


def connector(path: str, busy_timeout: float = MAX_BEGIN_WAIT) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine("sqlite+aiosqlite://...")`."""

    async def connect() -> InlineConnection:
        # Busy waits happen in `_begin` (with asyncio sleeps), never inside SQLite.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
        return InlineConnection(conn, busy_timeout)

    return connect
