"""How fast the ingest worker applies delivery receipts (issue 14 item 2), in process.

    python -m bench.statuses [--messages 2000] [--per-message 3] [--batch 100 1000] [--runs 3]
                             [--database-url postgresql+asyncpg://…] [--profile N]

Per run, in a fresh database: `messages` outbound WhatsApp messages (every second one a campaign
message with its recipient), and `per-message` status events for each (sent, delivered, read;
the order shuffled within a window, so some arrive out of order) stored as the webhook path
stores them — cut from real WhatsApp status webhooks by the adapter's `split`. Then the status
lane runs as the ingest worker runs it — claim up to `batch` due rows, `apply_status_rows`, one
transaction — until the queue is empty (timed: applied/s), and, on
the same rows in the same database, the baseline: a bare batched
`UPDATE message … FROM (VALUES (id, status), …)` per `batch` events, with the message ids
already known (no parsing, no lookup, no recipients, no events). Prints medians of `runs` and
the ratio. Without --database-url: SQLite in a temporary directory (the embedded default).
With it: PostgreSQL; each run creates and drops its own database beside the one named.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from bench.statuses.world import build, status, store
from tidings.actions.base import transaction
from tidings.config import load_settings
from tidings.domain.enums import InboundLane, InboundState
from tidings.ingest.statuses import apply_status_rows
from tidings.runtime import Runtime
from tidings.storage.db import migrate
from tidings.storage.models import InboundEvent, Message
from tidings.storage.types import utcnow

STATES = ("sent", "delivered", "read")


@dataclass(frozen=True, slots=True)
class Figures:
    events: int
    applied_per_s: float
    cpu_ms_per_event: float
    baseline_per_s: float
    baseline_cpu_ms_per_event: float


def receipts(messages: int, per_message: int, seed: int) -> list[dict[str, object]]:
    """`per_message` receipts for each message, in send order with a little disorder: each
    receipt may swap with its neighbour (read before delivered, as providers do)."""
    rnd = random.Random(seed)
    base = 1_750_000_000
    out = [
        status(i, STATES[k % len(STATES)], base + i // 100 + k)
        for k in range(per_message)
        for i in range(messages)
    ]
    for i in range(0, len(out) - 1, 2):
        if rnd.random() < 0.1:
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


async def lane_round(rt: Runtime, batch: int) -> bool:
    """One round of the status lane as the ingest worker runs it: claim up to `batch` due
    status rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL) and hand them to the lane function,
    all in one transaction. (The worker's own claim sizing is its business; the bench fixes
    the size to measure it.) Returns whether more may be waiting."""
    now = utcnow()
    async with transaction(rt) as tx:
        rows = (
            await tx.session.scalars(
                select(InboundEvent)
                .where(
                    InboundEvent.lane == InboundLane.STATUS,
                    InboundEvent.state == InboundState.PENDING,
                    InboundEvent.next_attempt_at <= now,
                )
                .order_by(InboundEvent.next_attempt_at, InboundEvent.id)
                .limit(batch)
                .with_for_update(**rt.db.skip_locked())
            )
        ).all()
        if rows:
            await apply_status_rows(tx, rows, lambda: False)
    return len(rows) == batch


async def one_run(
    url: str, data_dir: Path, args: argparse.Namespace, batch: int, prof: cProfile.Profile | None
) -> Figures:
    settings = load_settings(database_url=url, data_dir=data_dir, sandbox=False, redis_url=None)
    rt = Runtime(settings)
    await rt.start()
    try:
        world = await build(rt, args.messages)
        events = await store(rt, world, receipts(args.messages, args.per_message, seed=batch))
        cpu, wall = time.process_time(), time.perf_counter()
        if prof is not None:
            prof.enable()
        while await lane_round(rt, batch):
            pass
        if prof is not None:
            prof.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        async with rt.db.read() as s:
            done = await s.scalar(
                select(func.count()).where(InboundEvent.state == InboundState.DONE)
            )
            final = dict(
                (await s.execute(select(Message.id, Message.status).order_by(Message.id))).all()
            )
        if done != events:
            raise SystemExit(f"expected {events} applied events, got {done}")
        # The baseline: the same events as (message id, status) pairs, one bare UPDATE … FROM
        # (VALUES …) per `batch`, each batch its own transaction as the worker's.
        ids = world.message_ids
        pairs = [
            (ids[i], STATES[k % len(STATES)])
            for k in range(args.per_message)
            for i in range(args.messages)
        ]
        started, base_cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(pairs), batch):
            chunk = pairs[start : start + batch]
            params: dict[str, object] = {}
            tuples = []
            for n, (mid, st) in enumerate(chunk):
                tuples.append(f"(CAST(:i{n} AS BIGINT), CAST(:s{n} AS VARCHAR))")
                params[f"i{n}"], params[f"s{n}"] = mid, st
            sql = (
                "WITH v (id, status) AS (VALUES "
                + ", ".join(tuples)
                + ") UPDATE message SET status = v.status FROM v WHERE message.id = v.id"
            )
            async with rt.db.write() as s:
                await s.execute(text(sql), params)
        baseline = time.perf_counter() - started
        base_cpu = time.process_time() - base_cpu
        expected = {
            mid: "read" if args.per_message >= 3 else STATES[args.per_message - 1] for mid in ids
        }
        if {k: v for k, v in final.items() if k in expected} != expected:
            raise SystemExit("the status path left a message short of its furthest status")
        return Figures(
            events, events / wall, cpu * 1000 / events, events / baseline, base_cpu * 1000 / events
        )
    finally:
        await rt.stop()


async def pg_database(admin_url: str, name: str, create: bool) -> str:
    import asyncpg  # type: ignore[import-untyped]

    url = make_url(admin_url)
    conn = await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=url.host,
        port=url.port,
        database=url.database,
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if create:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.set(database=name).render_as_string(hide_password=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--per-message", type=int, default=3)
    parser.add_argument("--batch", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)
    if not 100 <= args.messages <= 20_000 or not 1 <= args.per_message <= 3:
        parser.error("--messages must be within 100..20000 and --per-message within 1..3")
    if not 1 <= args.runs <= 5 or not all(1 <= b <= 5000 for b in args.batch):
        parser.error("--runs must be within 1..5 and --batch within 1..5000")
    store_name = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"status path, {store_name}: {args.messages} messages x {args.per_message} receipts; "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    prof = cProfile.Profile() if args.profile else None
    for batch in args.batch:
        figures: list[Figures] = []
        for run in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="tidings-statuses-") as tmp:
                if args.database_url:
                    name = f"tidings_bench_statuses_{os.getpid()}_{run}"
                    url = asyncio.run(pg_database(args.database_url, name, True))
                else:
                    url = f"sqlite+aiosqlite:///{tmp}/t.db"
                try:
                    migrate(url)
                    last = run == args.runs - 1 and batch == args.batch[-1]
                    f = asyncio.run(one_run(url, Path(tmp), args, batch, prof if last else None))
                finally:
                    if args.database_url:
                        asyncio.run(pg_database(args.database_url, name, False))
            figures.append(f)
            print(
                f"  batch {batch} run {run + 1}: {f.applied_per_s:,.0f} applied/s "
                f"({f.cpu_ms_per_event:.3f} ms CPU/event); bare UPDATE … FROM (VALUES …) "
                f"{f.baseline_per_s:,.0f}/s ({f.baseline_cpu_ms_per_event:.3f} ms CPU/event); "
                f"ratio {f.applied_per_s / f.baseline_per_s:.2f}"
            )
        applied = statistics.median(f.applied_per_s for f in figures)
        base = statistics.median(f.baseline_per_s for f in figures)
        ratio = statistics.median(f.applied_per_s / f.baseline_per_s for f in figures)
        cpu = statistics.median(f.cpu_ms_per_event for f in figures)
        base_cpu = statistics.median(f.baseline_cpu_ms_per_event for f in figures)
        print(
            f"{store_name}, batch {batch}: median {applied:,.0f} status events applied/s "
            f"({cpu:.3f} ms CPU/event = {1000 / cpu:,.0f} events per CPU-second), "
            f"baseline {base:,.0f}/s ({base_cpu:.3f} ms CPU/event), ratio {ratio:.2f} "
            f"wall, {base_cpu / cpu:.2f} CPU (load average now {os.getloadavg()[0]:.2f})"
        )
    if prof is not None:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(args.profile)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
