"""The lane claims' cost against a backlog (issue 14, migration 0017_inbound_claim_order).

    python -m bench.ingest.claims [--customer 5000] [--receipts 20000] [--repeat 30]

A fresh migrated SQLite file holds `--customer` pending fresh customer-lane rows and
`--receipts` pending status-lane rows (the shape of a broadcast with customers writing). Each
claim's statement (`ingest.worker.claim_statement`, what `process_claim` runs) is timed
`--repeat` times on a read connection; the figure is the median in ms, with the plan SQLite
chose. Same-run baseline: the fresh customer claim as it was before 0017 (with the due-time
test, which steered SQLite to the (lane, state, next_attempt_at) index and a sort of every
pending customer row), and the ratio. Nothing is written during the timing; bounded in size.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Select, select

from bench.common import machine_facts
from tidings.domain.enums import InboundLane, InboundState
from tidings.ingest.committer import SqliteInserter, _sqlite_time
from tidings.ingest.worker import CUSTOMER_FRESH, CUSTOMER_RETRIES, STATUS, Claim, claim_statement
from tidings.storage.db import Database, migrate
from tidings.storage.models import InboundEvent
from tidings.storage.types import utcnow


async def _time(db: Database, stmt: Select[InboundEvent], repeat: int) -> tuple[float, str]:
    async with db.read() as s:
        conn = await s.connection()
        sql = str(stmt.compile(conn.engine, compile_kwargs={"literal_binds": True}))
        plan = " | ".join(
            str(r[-1]) for r in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
        )
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            (await conn.exec_driver_sql(sql)).fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), plan


async def run(args: argparse.Namespace, path: Path) -> None:
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(migrate, url)
    now = utcnow()
    # Raw sqlite3 (foreign keys off, as SQLite's default): the claims read only inbound_event.
    rows = [
        (
            1,
            1,
            f"{lane}:{n}",
            b"{}",
            _sqlite_time(now - timedelta(seconds=count - n)),
            _sqlite_time(now),
            InboundState.PENDING.value,
            0,
            _sqlite_time(now - timedelta(milliseconds=count - n)),
            None,
            lane.value,
        )
        for lane, count in (
            (InboundLane.CUSTOMER, args.customer),
            (InboundLane.STATUS, args.receipts),
        )
        for n in range(count)
    ]
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(SqliteInserter.SQL, rows)
    conn.close()
    db = Database(url)
    at = utcnow()
    old = (
        select(InboundEvent)
        .where(CUSTOMER_FRESH.where(at) & (InboundEvent.next_attempt_at <= at))
        .order_by(*CUSTOMER_FRESH.order)
        .limit(CUSTOMER_FRESH.limit)
    )
    before, before_plan = await _time(db, old, args.repeat)
    print(
        f"backlog: {args.customer:,} customer rows, {args.receipts:,} receipts; "
        f"load average {machine_facts()['load_before']}"
    )
    print(f"{'claim':34s}{'median ms':>10s}  plan")
    print(f"{'customer, before 0017 (baseline)':34s}{before:10.3f}  {before_plan}")
    claims: tuple[Claim, ...] = (CUSTOMER_FRESH, CUSTOMER_RETRIES, STATUS)
    for claim in claims:
        ms, plan = await _time(db, claim_statement(claim, at, claim.limit), args.repeat)
        ratio = (
            f"  ({before / ms:.1f}x faster than the baseline)" if claim is CUSTOMER_FRESH else ""
        )
        print(f"{claim.name:34s}{ms:10.3f}  {plan}{ratio}")
    await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--customer", type=int, default=5000)
    parser.add_argument("--receipts", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    if not (0 <= args.customer <= 100_000 and 0 <= args.receipts <= 200_000):
        parser.error("--customer within 0..100,000, --receipts within 0..200,000")
    with tempfile.TemporaryDirectory(prefix="tidings-claims-") as tmp:
        asyncio.run(run(args, Path(tmp) / "claims.db"))


if __name__ == "__main__":
    main()
