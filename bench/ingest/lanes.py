"""Inbound lanes (issue 14, items 1 and 7): how long a customer's message waits behind a status
backlog, and how processing scales with worker processes on PostgreSQL.

    python -m bench.ingest.lanes wait [--backlog 20000] [--runs 3] [--cap 240] [--database-url URL]
    python -m bench.ingest.lanes scaling --database-url postgresql+asyncpg://…/postgres \\
        [--messages 600] [--receipts 2400] [--runs 3]

`wait`: in one process (SQLite by default, the embedded setup), `--backlog` delivery receipts
for messages of ours are stored as due status-lane events with provider timestamps older than a
customer's message stored right after them; the ingest worker loop (`ingest.worker.run`, the
loop `tidings serve` runs) starts and the figure is the time until that customer message is
applied, with how many receipts were applied before it. Runs against whatever `tidings` is on
the path, so the code before lanes is measured by pointing PYTHONPATH at its `src` (see
docs/benchmarks.md). A run that passes `--cap` seconds stops and reports the lower bound.

`scaling`: a fresh database `bench_ingest_lanes` on that PostgreSQL server (an old one is
dropped); 1 and then 2 `tidings worker` processes (TIDINGS_WORKERS=ingest, both lanes) drain
the same backlog — `--messages` customer messages from 100 senders and `--receipts` delivery
receipts — and the figure is events applied per second from the first applied event to the
last; median of `--runs`, and the 2/1 ratio. Every event must end `done` after one attempt.
Loopback only; bounded in size and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, insert, select

from bench.common import child, machine_facts
from tidings.access import Principal
from tidings.actions.admin import bootstrap, create_channel
from tidings.config import load_settings
from tidings.domain.enums import InboundState, Role
from tidings.runtime import Runtime
from tidings.storage.db import migrate
from tidings.storage.models import Conversation, InboundEvent, Message

T0 = 1_750_000_000
SECRET = "bench-lanes-secret-0123456789"  # noqa: S105 - a bench channel on loopback
DB = "bench_ingest_lanes"
SEEDS = 100  # conversations the broadcast went to


def event(
    ws: int, channel: int, key: str, doc: dict[str, Any], at: int, lane: str
) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "workspace_id": ws,
        "channel_id": channel,
        "event_key": key,
        "payload": orjson.dumps(doc),
        "occurred_at": datetime.fromtimestamp(at, UTC),
        "received_at": now,
        "state": InboundState.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "error": None,
        "lane": lane,
    }


def message(ws: int, channel: int, i: int, sender: str, at: int) -> dict[str, Any]:
    doc = {"message": {"id": f"m{i}", "from": {"id": sender}, "text": f"hi {i}", "timestamp": at}}
    return event(ws, channel, f"msg:m{i}", doc, at, "customer")


def receipt(ws: int, channel: int, i: int, at: int) -> dict[str, Any]:
    doc = {"status": {"id": f"out-{i}", "status": "delivered", "timestamp": at}}
    return event(ws, channel, f"status:out-{i}:delivered", doc, at, "status")


async def setup(rt: Runtime, receipts: int) -> tuple[int, int]:
    """A workspace, an API channel, SEEDS conversations and `receipts` sent messages of ours
    spread over them (out-0…); returns (workspace id, channel id). The conversations are made
    by inserting their customers' first messages and draining the queue with whatever worker
    is installed."""
    boot = await bootstrap(rt, "bench@x.test", "pw-pw-pw-pw")
    who = Principal(boot["workspace_id"], boot["agent_id"], Role.OWNER, frozenset())
    channel = await create_channel(rt, who, "api", "bench", {"secret": SECRET}, None)
    ws = int(boot["workspace_id"])
    from tidings.ingest import worker

    seeds = [message(ws, channel.id, -1 - k, f"seed{k}", T0 - 5000) for k in range(SEEDS)]
    async with rt.db.write() as s:
        await s.execute(insert(InboundEvent), seeds)
    while await worker.process_batch(rt):
        pass
    async with rt.db.write() as s:
        convs = (await s.scalars(select(Conversation.id))).all()
        rows = [
            {
                "workspace_id": ws,
                "conversation_id": convs[i % len(convs)],
                "channel_id": channel.id,
                "direction": "out",
                "kind": "text",
                "body": f"broadcast {i}",
                "provider_message_id": f"out-{i}",
                "status": "sent",
                "extra": {},
            }
            for i in range(receipts)
        ]
        for start in range(0, len(rows), 2000):
            await s.execute(insert(Message), rows[start : start + 2000])
    return ws, channel.id


async def insert_events(rt: Runtime, rows: list[dict[str, Any]]) -> None:
    async with rt.db.write() as s:
        for start in range(0, len(rows), 2000):
            await s.execute(insert(InboundEvent), rows[start : start + 2000])


async def states(rt: Runtime) -> dict[tuple[str, str], int]:
    async with rt.db.read() as s:
        rows = await s.execute(
            select(InboundEvent.lane, InboundEvent.state, func.count()).group_by(
                InboundEvent.lane, InboundEvent.state
            )
        )
        return {(str(lane), str(state)): int(n) for lane, state, n in rows}


# --- wait: a customer message behind a status backlog, in one process -----------------------


def time_write_lock(rt: Runtime) -> dict[str, list[float]]:
    """Record how long each task holds this process's write turn (SQLite's one writer), by
    task name (`worker-<name>`, `ingest-group-commit`…)."""
    holds: dict[str, list[float]] = {}
    turn = rt.db.writer_turn

    @asynccontextmanager
    async def timed() -> AsyncIterator[None]:
        async with turn():
            started = time.perf_counter()
            try:
                yield
            finally:
                task = asyncio.current_task()
                name = task.get_name() if task is not None else "?"
                holds.setdefault(name, []).append(time.perf_counter() - started)

    rt.db.writer_turn = timed  # type: ignore[method-assign]
    return holds


async def wait_once(
    url: str, data_dir: Path, backlog: int, cap: float, all_workers: bool, delay: float
) -> tuple[float, int, bool, dict[str, list[float]]]:
    from tidings.ingest import worker

    settings = load_settings(database_url=url, data_dir=data_dir, sandbox=False, redis_url=None)
    rt = Runtime(settings)
    await rt.start()
    try:
        ws, channel = await setup(rt, backlog)
        # The broadcast's receipts first (older provider timestamps), then the customer.
        await insert_events(rt, [receipt(ws, channel, i, T0 + i // 1000) for i in range(backlog)])
        if not delay:
            await insert_events(rt, [message(ws, channel, 1, "carla", T0 + 3600)])
        key_done = (
            select(InboundEvent.id)
            .where(InboundEvent.event_key == "msg:m1")
            .where(InboundEvent.state == InboundState.DONE)
        )
        holds = time_write_lock(rt)
        if all_workers:
            from tidings.workers.registry import start_workers

            start_workers(rt)  # every loop `tidings serve` runs, as it runs them
        else:
            rt.spawn(worker.run(rt), name="worker-ingest")
        if delay:
            # The customer writes while the backlog is being worked, through the webhook path.
            await asyncio.sleep(delay)
            await rt.committer.submit([message(ws, channel, 1, "carla", T0 + 3600)])
        started = time.perf_counter()
        while True:
            async with rt.db.read() as s:
                if (await s.execute(key_done)).first() is not None:
                    break
            waited = time.perf_counter() - started
            if waited > cap:
                break
            await asyncio.sleep(0.01)
        waited = time.perf_counter() - started
        ahead = (await states(rt)).get(("status", "done"), 0)
        return waited, ahead, waited <= cap, holds
    finally:
        await rt.stop()


def cmd_wait(args: argparse.Namespace) -> int:
    facts = machine_facts()
    waits: list[float] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="tidings-lanes-") as tmp:
            url = args.database_url or f"sqlite+aiosqlite:///{tmp}/t.db"
            if args.database_url:
                reset_pg(url)
                url = pg_bench_url(url)
            migrate(url)
            waited, ahead, ok, holds = asyncio.run(
                wait_once(url, Path(tmp), args.backlog, args.cap, args.all_workers, args.delay)
            )
            waits.append(waited)
            for name, spans in sorted(holds.items()):
                spans.sort()
                print(
                    f"  write lock held by {name}: {len(spans):,} times, "
                    f"p50 {spans[len(spans) // 2] * 1000:.1f} ms, "
                    f"p99 {spans[int(len(spans) * 0.99)] * 1000:.1f} ms, "
                    f"max {spans[-1] * 1000:.1f} ms"
                )
            print(
                f"run {run + 1}: customer message applied after {waited:.3f} s"
                f"{'' if ok else ' (cap reached: NOT applied yet, lower bound)'}; "
                f"{ahead:,} receipts applied by then",
                flush=True,
            )
    store = "PostgreSQL" if args.database_url else "SQLite"
    loops = "every worker loop" if args.all_workers else "the ingest loop"
    print(
        f"\ncustomer message behind {args.backlog:,} status events ({store}, one process, "
        f"{loops}, arriving {args.delay:.1f} s in): "
        f"median wait {statistics.median(waits):.3f} s over {len(waits)} run(s); "
        f"load average {os.getloadavg()[0]:.1f}; {facts.get('cpu', '')}"
    )
    return 0


# --- scaling: 1 and 2 worker processes on PostgreSQL ---------------------------------------


def pg_bench_url(url: str) -> str:
    return f"{url.rpartition('/')[0]}/{DB}"


def reset_pg(url: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    async def go() -> None:
        plain = url.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(f"{plain.rpartition('/')[0]}/postgres")
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {DB}")
        finally:
            await conn.close()

    asyncio.run(go())


async def seed_scaling(url: str, data_dir: Path, key: str, messages: int, receipts: int) -> int:
    settings = load_settings(
        database_url=url, data_dir=data_dir, sandbox=False, redis_url=None, secret_key=key
    )
    rt = Runtime(settings)
    await rt.start()
    try:
        ws, channel = await setup(rt, receipts)
        rows = [receipt(ws, channel, i, T0 + i // 100) for i in range(receipts)]
        rows += [message(ws, channel, i, f"c{i % 100}", T0 + i) for i in range(messages)]
        await insert_events(rt, rows)
        return len(rows)
    finally:
        await rt.stop()


async def watch(url: str, total: int, cap: float) -> tuple[float, int]:
    """Seconds from the first applied event to the last, and how many were applied."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    stmt = (
        select(func.count())
        .select_from(InboundEvent)
        .where(InboundEvent.state == InboundState.DONE, ~InboundEvent.event_key.like("msg:m-%"))
    )
    first: tuple[float, int] | None = None
    started = time.perf_counter()
    try:
        while True:
            async with engine.connect() as conn:
                done = int(await conn.scalar(stmt) or 0)
            now = time.perf_counter()
            if first is None and done:
                first = (now, done)
            if done >= total or now - started > cap:
                break
            await asyncio.sleep(0.05)
        async with engine.connect() as conn:
            once = await conn.scalar(
                select(func.count()).select_from(InboundEvent).where(InboundEvent.attempts != 1)
            )
        if once:
            raise SystemExit(f"{once} events were not applied exactly once")
    finally:
        await engine.dispose()
    if first is None:
        return 0.0, 0
    return now - first[0], done - first[1]


def cmd_scaling(args: argparse.Namespace) -> int:
    if not args.database_url.startswith("postgresql"):
        raise SystemExit("scaling needs --database-url of a PostgreSQL server")
    url = pg_bench_url(args.database_url)
    exe = str(Path(sys.executable).with_name("tidings"))
    key = secrets.token_urlsafe(48)
    rates: dict[int, list[float]] = {1: [], 2: []}
    for run in range(args.runs):
        for n in (1, 2):
            with ExitStack() as stack:
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tidings-ls-")))
                reset_pg(args.database_url)
                migrate(url)
                total = asyncio.run(seed_scaling(url, tmp, key, args.messages, args.receipts))
                env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
                env.update(
                    TIDINGS_DATABASE_URL=url,
                    TIDINGS_DATA_DIR=str(tmp),
                    TIDINGS_SECRET_KEY=key,
                    TIDINGS_SANDBOX="0",
                    TIDINGS_LOG_LEVEL="warning",
                    TIDINGS_WORKERS="ingest",
                )
                procs: list[subprocess.Popen[bytes]] = [
                    stack.enter_context(child([exe, "worker"], env=env, log=tmp / f"w{i}.log"))
                    for i in range(n)
                ]
                seconds, applied = asyncio.run(watch(url, total, args.cap))
                if any(p.poll() is not None for p in procs):
                    raise SystemExit("a worker exited early")
            rate = applied / seconds if seconds else 0.0
            rates[n].append(rate)
            print(
                f"run {run + 1}, {n} worker(s): {applied:,} events in {seconds:.2f} s "
                f"= {rate:,.0f} events/s",
                flush=True,
            )
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(
        f"\nPostgreSQL, backlog of {args.messages:,} customer messages + {args.receipts:,} "
        f"receipts: 1 worker {one:,.0f} events/s, 2 workers {two:,.0f} events/s "
        f"(medians of {args.runs}); ratio 2/1 = {two / one if one else 0:.2f}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait")
    w.add_argument("--backlog", type=int, default=20_000)
    w.add_argument("--runs", type=int, default=3)
    w.add_argument("--cap", type=float, default=240.0)
    w.add_argument("--database-url", default="")
    w.add_argument(
        "--all-workers", action="store_true", help="every worker loop, as `tidings serve` runs"
    )
    w.add_argument(
        "--delay", type=float, default=0.0, help="the customer writes this long after the start"
    )
    s = sub.add_parser("scaling")
    s.add_argument("--database-url", required=True)
    s.add_argument("--messages", type=int, default=600)
    s.add_argument("--receipts", type=int, default=2_400)
    s.add_argument("--runs", type=int, default=3)
    s.add_argument("--cap", type=float, default=300.0)
    args = parser.parse_args(argv)
    if args.cmd == "wait":
        if not 100 <= args.backlog <= 100_000 or not 1 <= args.runs <= 5:
            parser.error("--backlog 100..100000, --runs 1..5")
        return cmd_wait(args)
    if not 100 <= args.messages + args.receipts <= 50_000 or not 1 <= args.runs <= 5:
        parser.error("--messages + --receipts within 100..50000, --runs 1..5")
    return cmd_scaling(args)


if __name__ == "__main__":
    raise SystemExit(main())
