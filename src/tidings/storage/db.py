"""The database handle: engines, sessions, and the few dialect differences in one place.

SQLite allows one writer at a time. Rather than let concurrent tasks collide on the write lock
(and fail with "database is locked" when a read transaction tries to upgrade), writes go through
a dedicated engine with a single connection that opens every transaction with BEGIN IMMEDIATE;
reads use a separate pool and see WAL snapshots. On PostgreSQL both handles share one engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import Select, Table, event, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from tidings.storage import sqlite_inline
from tidings.storage.files import private_sqlite

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
T = TypeVar("T")


def sqlite_path(url: str) -> Path | None:
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix) and ":memory:" not in url:
        return Path(url[len(prefix) :].split("?", 1)[0])
    return None


def _install_sqlite_hooks(engine: AsyncEngine, *, immediate: bool, busy_ms: int = 10000) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so we can choose how BEGIN is issued.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged webhook must survive a power cut, not only a process crash.
        # Group commit makes the fsync cost per batch, not per request.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# JSON columns (message extras, delivery state, events) through orjson: the stdlib's decoder was
# a tenth of the delivery worker's CPU (every claimed message's `extra`).
JSON_CODEC: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


class TurnLock:
    """An asyncio lock with two queues: a waiter that asks to go `first` is handed the lock
    before any ordinary waiter (each queue in arrival order). The lock passes straight to the
    next waiter on release, so a newcomer can never slip in between."""

    def __init__(self) -> None:
        self._held = False
        self._first: deque[asyncio.Future[None]] = deque()
        self._rest: deque[asyncio.Future[None]] = deque()

    @property
    def locked(self) -> bool:
        return self._held

    def waiting(self, *, first: bool) -> int:
        """How many waiters of that kind are queued."""
        return len(self._first if first else self._rest)

    async def acquire(self, *, first: bool = False) -> None:
        if not self._held:
            self._held = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._first if first else self._rest
        queue.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # handed over just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):  # already skipped by a release
                    queue.remove(fut)
            raise

    def release(self) -> None:
        for queue in (self._first, self._rest):
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)  # the lock stays held: it is that waiter's now
                    return
        self._held = False


# Set in the tasks of background loops (campaign fan-out, sending, recording send answers, the
# report rollup ...; workers/registry.py): their SQLite write transactions give way to a
# customer's event on its way to an agent (`PriorityHold`).
BACKGROUND_WRITER: ContextVar[bool] = ContextVar("background_writer", default=False)
# Set by the ingest loop while it drains customer events: their write transactions take the
# process's write turn ahead of other waiting writers, like the webhooks' group commit.
FIRST_WRITER: ContextVar[bool] = ContextVar("first_writer", default=False)
# The longest a background writer waits for the hold to end before it writes anyway: under a
# flood of customer messages the background still gets a transaction this often per task.
HOLD_WAIT_SECONDS = 0.25


class PriorityHold:
    """SQLite, one process: while a customer's event is on its way from its webhook to the
    agents (committed, claimed, applied, published), background loops do not start a write
    transaction. They would not delay it by the write lock alone (the customer's webhook and
    claim go `first`), but by the event loop: SQLite's writer runs on the loop's thread, so each
    background transaction's statements run between the steps of the customer's path, and with
    the fan-out, sending, the send answers and the rollup all busy during a broadcast the
    customer waited ~0.5 s for its turns (docs/benchmarks.md, "Broadcast storm").

    `begin()` when such an event is handed to the group commit; the ingest worker `end()`s it
    once it found no due customer event left and nothing began since it looked (`generation`).
    Enabled only where the customer lane runs in this process (`enabled`): elsewhere nobody
    would end a hold. `TIDINGS_PRIORITY_HOLD=0` turns it off (diagnosis, and the same-session
    comparison of `bench/storm`)."""

    def __init__(self) -> None:
        self.enabled = False
        self.allowed = os.environ.get("TIDINGS_PRIORITY_HOLD", "1") != "0"
        self.generation = 0
        self._held = False
        self._ended: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def _event(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._ended is None or self._ended[0] is not loop:
            self._ended = (loop, asyncio.Event())
            if not self._held:
                self._ended[1].set()
        return self._ended[1]

    @property
    def held(self) -> bool:
        return self._held

    def begin(self) -> None:
        if not (self.enabled and self.allowed):
            return
        self.generation += 1
        if not self._held:
            self._held = True
            self._event().clear()

    def end(self, generation: int) -> None:
        """End the hold unless another customer event began one after `generation` was read."""
        if self._held and generation == self.generation:
            self._held = False
            self._event().set()

    async def wait(self) -> None:
        """Until the hold ends, at most HOLD_WAIT_SECONDS."""
        if not self._held:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event().wait(), HOLD_WAIT_SECONDS)


class Database:
    def __init__(self, url: str, *, echo: bool = False, inline_writes: bool | None = None) -> None:
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        if self.dialect == "sqlite":
            path = sqlite_path(url)
            if path is not None:
                private_sqlite(path)
            # The one write connection runs on the loop's thread (see sqlite_inline): busy
            # waits are asyncio sleeps there, so SQLite's own busy handler is off for it.
            if inline_writes is None:
                # An escape hatch for diagnosis and the same-run baseline of the benchmarks.
                inline_writes = os.environ.get("TIDINGS_SQLITE_INLINE_WRITES", "1") != "0"
            inline = inline_writes and path is not None
            self.write_engine = create_async_engine(
                url,
                echo=echo,
                **JSON_CODEC,
                pool_size=1,
                max_overflow=0,
                **({"async_creator": sqlite_inline.connector(str(path))} if inline else {}),
            )
            _install_sqlite_hooks(self.write_engine, immediate=True, busy_ms=0 if inline else 10000)
            self.read_engine = create_async_engine(
                url, echo=echo, **JSON_CODEC, pool_size=4, max_overflow=4
            )
            _install_sqlite_hooks(self.read_engine, immediate=False)
        else:
            self.write_engine = create_async_engine(
                url, echo=echo, **JSON_CODEC, pool_size=10, max_overflow=10, pool_pre_ping=True
            )
            self.read_engine = self.write_engine
        # Lookups that may run while the caller already holds a pooled connection (the channel
        # cache, filled on a miss in the middle of a transaction) take their connection from a
        # separate small pool, so a busy main pool can never wait on itself.
        self.aux_engine = (
            self.read_engine
            if self.dialect == "sqlite"
            else create_async_engine(
                url, echo=echo, **JSON_CODEC, pool_size=2, max_overflow=6, pool_pre_ping=True
            )
        )
        self._aux_sessions = async_sessionmaker(self.aux_engine, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._turn: tuple[asyncio.AbstractEventLoop, TurnLock] | None = None
        self.priority = PriorityHold()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def writer_turn(self, *, first: bool = False) -> AsyncIterator[None]:
        """SQLite: this process's writers (the write session and the webhook group committer,
        which has its own connection) take turns through one lock. Without it they met in
        SQLite's busy handler, which sleeps up to 100 ms between tries, so a waiting
        acknowledgement could miss a free lock again and again. Waiters are served in order,
        except that `first` ones (the group committer: webhooks waiting for their 200) go
        ahead of every other waiter (and so do the customer lane's claims, `FIRST_WRITER`);
        background loops' writers first wait for a customer's
        event in flight (`PriorityHold`). PostgreSQL: no-op."""
        if self.dialect != "sqlite":
            yield
            return
        first = first or FIRST_WRITER.get()
        if not first and BACKGROUND_WRITER.get():
            await self.priority.wait()
        loop = asyncio.get_running_loop()
        if self._turn is None or self._turn[0] is not loop:
            self._turn = (loop, TurnLock())
        lock = self._turn[1]
        await lock.acquire(first=first)
        try:
            yield
        finally:
            lock.release()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error."""
        async with self.writer_turn(), self._write_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read_sessions() as session:
            yield session

    async def has_rows(self, stmt: Select[Any]) -> bool:
        """Look before taking the write lock: whether `stmt` finds anything, read outside any
        write transaction. The queue pollers ask this first, so an idle queue does not take
        SQLite's single writer every half second (a row that appears just after is seen on the
        next poll or wake-up)."""
        async with self.read() as s:
            return (await s.execute(stmt.limit(1))).first() is not None

    @asynccontextmanager
    async def aux(self) -> AsyncIterator[AsyncSession]:
        """A read session from the separate small pool (see `aux_engine`)."""
        async with self._aux_sessions() as session:
            yield session

    async def insert_rows(
        self, session: AsyncSession, model: type[DeclarativeBase], rows: list[dict[str, Any]]
    ) -> list[int]:
        """Insert rows of a mapped class (dicts with the same keys) as one executemany, no ORM
        objects built, and return their ids in order. SQLite does not promise RETURNING rows in
        insert order, so there the ids are given up front: max(id) + 1…, the ids SQLite itself
        would give, since a write transaction (BEGIN IMMEDIATE) holds the single writer's lock.
        PostgreSQL: RETURNING in parameter order."""
        if not rows:
            return []
        if self.is_sqlite:
            top = int(await session.scalar(select(func.max(model.__table__.c.id))) or 0)
            ids = list(range(top + 1, top + 1 + len(rows)))
            await session.execute(
                insert(model), [{**row, "id": i} for row, i in zip(rows, ids, strict=True)]
            )
            return ids
        result = await session.execute(
            insert(model).returning(model.__table__.c.id, sort_by_parameter_order=True), rows
        )
        return [int(i) for i in result.scalars()]

    def insert(self, table: Table | Any) -> sqlite.Insert | postgresql.Insert:
        """A dialect-specific INSERT that supports ON CONFLICT."""
        if self.is_sqlite:
            return sqlite.insert(table)
        return postgresql.insert(table)

    def skip_locked(self) -> dict[str, Any]:
        """`with_for_update` arguments for queue claims: SKIP LOCKED on PostgreSQL; SQLite has a
        single writer, so its claims are already exclusive."""
        if self.is_sqlite:
            return {}
        return {"skip_locked": True}

    async def claim(
        self, s: AsyncSession, model: type[T], due: Any, order: Sequence[Any], limit: int
    ) -> Sequence[T]:
        """Lock up to `limit` rows of `model` that `due` selects, in `order`: a queue worker's
        claim inside its write transaction (rows another worker holds are skipped, above)."""
        stmt = select(model).where(due).order_by(*order).limit(limit)
        return (await s.scalars(stmt.with_for_update(**self.skip_locked()))).all()

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
        if self.aux_engine not in (self.read_engine, self.write_engine):
            await self.aux_engine.dispose()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "heads") -> None:
    """Bring the schema up to `revision` (blocking; call from a thread in async code).

    "heads": features may add migrations on separate branches from 0001; all are applied."""
    from alembic import command

    if (path := sqlite_path(url)) is not None:
        private_sqlite(path)
    command.upgrade(alembic_config(url), revision)


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
