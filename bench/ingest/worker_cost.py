"""What one inbound event costs the ingest worker: CPU milliseconds per event, in process.

    python -m bench.ingest.worker_cost [--events 2000] [--senders 200] [--runs 3] [--profile N]

Stores `events` signed-API-channel message events (from `senders` distinct customers, so
contacts and conversations are created as well as appended to) through the group committer, then
times `process_batch` until the queue is empty. CPU time (`time.process_time`, all threads of
this process: the event loop and the database driver's thread) is what the worker costs and is
far less sensitive than wall time to other work on a shared machine. Same-run baseline: the
CPU cost of storing the same events (the acknowledgement path's database work), for a ratio.
`--profile N` prints the N most expensive functions (cProfile, cumulative) of the last run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from tidings.access import Principal
from tidings.actions.admin import bootstrap, create_channel
from tidings.config import load_settings
from tidings.domain.enums import InboundLane, InboundState, Role
from tidings.ingest.worker import process_batch
from tidings.runtime import Runtime
from tidings.storage.db import migrate


async def one_run(
    url: str, data_dir: Path, events: int, senders: int, profile: cProfile.Profile | None
) -> tuple[float, float, float]:
    settings = load_settings(database_url=url, data_dir=data_dir, sandbox=False, redis_url=None)
    rt = Runtime(settings)
    await rt.start()
    try:
        boot = await bootstrap(rt, "bench@x.test", "pw-pw-pw-pw")
        who = Principal(boot["workspace_id"], boot["agent_id"], Role.OWNER, frozenset())
        channel = await create_channel(
            rt, who, "api", "bench", {"secret": "bench-worker-cost-secret-0123"}, None
        )
        now = datetime.now(UTC)
        rows = [
            {
                "workspace_id": boot["workspace_id"],
                "channel_id": channel.id,
                "event_key": f"msg:e{i}",
                "payload": orjson.dumps(
                    {
                        "message": {
                            "id": f"e{i}",
                            "from": {"id": f"c{i % senders}", "name": f"Customer {i % senders}"},
                            "text": f"hello {i}",
                            "timestamp": int(now.timestamp()),
                        },
                    }
                ),
                "occurred_at": now,
                "received_at": now,
                "state": InboundState.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "error": None,
                "lane": InboundLane.CUSTOMER,
            }
            for i in range(events)
        ]
        store_cpu = time.process_time()
        for start in range(0, events, 100):
            await rt.committer.submit(rows[start : start + 100])
        store_cpu = time.process_time() - store_cpu
        cpu, wall = time.process_time(), time.perf_counter()
        if profile is not None:
            profile.enable()
        while await process_batch(rt):
            pass
        if profile is not None:
            profile.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        async with rt.db.read() as s:
            from sqlalchemy import func, select

            from tidings.storage.models import InboundEvent, Message

            done = await s.scalar(
                select(func.count()).where(InboundEvent.state == InboundState.DONE)
            )
            messages = await s.scalar(select(func.count()).select_from(Message))
        if done != events or messages != events:
            raise SystemExit(f"expected {events} processed events, got {done} / {messages}")
        return cpu * 1000 / events, store_cpu * 1000 / events, wall * 1000 / events
    finally:
        await rt.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)
    if not 100 <= args.events <= 50_000 or not 1 <= args.runs <= 10:
        parser.error("--events must be within 100..50000 and --runs within 1..10")
    work, store, walls = [], [], []
    profile = cProfile.Profile() if args.profile else None
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="tidings-wcost-") as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/t.db"
            migrate(url)
            last = run == args.runs - 1
            w, s, wall = asyncio.run(
                one_run(url, Path(tmp), args.events, args.senders, profile if last else None)
            )
            work.append(w)
            store.append(s)
            walls.append(wall)
            print(
                f"run {run + 1}: worker {w:.2f} ms CPU/event ({wall:.2f} ms wall), "
                f"storing {s:.3f} ms CPU/event"
            )
    w, s = statistics.median(work), statistics.median(store)
    wall = statistics.median(walls)
    print(
        f"\ningest worker (SQLite), {args.events} events from {args.senders} senders: "
        f"median {w:.2f} ms CPU per event (≈ {1000 / w:.0f} events/s per core), "
        f"{wall:.2f} ms wall; "
        f"storing them {s:.3f} ms CPU per event; ratio worker/store {w / s:.1f}"
    )
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.profile)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
