"""Reports benchmark on a generated data set (bench/data/generate.py fills the report tables
after the load): every report over 90-day windows, through the real HTTP API of a
`tidings serve` process, as median and p95 per report, next to two same-run baselines: GET
/healthz (no database) and, once per window, the channel volume report computed from the raw
`message` table (what reading raw rows would cost). Target: every report over 90 days ≤ 1 s.

    python -m bench.reports --url postgresql+asyncpg://.../bench1m --requests 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from sqlalchemy import func, select

from bench.common import child, free_port, machine_facts, wait_http
from bench.data.generate import AGENTS, EPOCH, INBOXES, LABELS
from bench.reads.run import TOKEN, ensure_token, pct
from tidings.storage.db import Database
from tidings.storage.models import Message

TARGET_MS = 1000.0
DAYS = 90


def windows(n: int) -> list[tuple[date, date]]:
    """n 90-day windows spread over the generated 300 days."""
    first = EPOCH.date()
    span = 300 - DAYS
    return [
        (
            first + timedelta(days=span * i // max(1, n - 1)),
            first + timedelta(days=span * i // max(1, n - 1) + DAYS - 1),
        )
        for i in range(n)
    ]


async def measure(n: int, call: Callable[[int], Awaitable[httpx.Response]]) -> list[float]:
    out = []
    for i in range(n):
        started = time.perf_counter()
        resp = await call(i)
        out.append((time.perf_counter() - started) * 1000)
        if resp.status_code != 200:
            raise RuntimeError(f"{resp.request.url} -> {resp.status_code}: {resp.text[:200]}")
    return out


async def workload(base: str, n: int) -> dict[str, list[float]]:
    spans = windows(n)
    results: dict[str, list[float]] = {}
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
    ) as c:

        def report(name: str, **extra: object) -> Callable[[int], Awaitable[httpx.Response]]:
            async def call(i: int) -> httpx.Response:
                start, end = spans[i % len(spans)]
                params = {"from": start.isoformat(), "to": end.isoformat()}
                params.update({k: str(v(i) if callable(v) else v) for k, v in extra.items()})
                return await c.get(f"/api/v1/reports/{name}", params=params)

            return call

        for _ in range(3):  # warm connections, caches and the planner
            await report("conversations")(0)
        results["baseline /healthz"] = await measure(n, lambda i: c.get("/healthz"))
        results["conversations"] = await measure(n, report("conversations"))
        results["conversations, business hours"] = await measure(
            n, report("conversations", business_hours="true")
        )
        results["conversations, inbox"] = await measure(
            n, report("conversations", inbox_id=lambda i: 1 + i % INBOXES)
        )
        results["conversations, agent"] = await measure(
            n, report("conversations", agent_id=lambda i: 1 + i % AGENTS)
        )
        results["conversations, label"] = await measure(
            n, report("conversations", label_id=lambda i: 1 + i % LABELS)
        )
        results["channels"] = await measure(n, report("channels"))
        results["channels, channel"] = await measure(
            n, report("channels", channel_id=lambda i: 1 + i % 4)
        )
        results["channels, label"] = await measure(
            n, report("channels", label_id=lambda i: 1 + i % LABELS)
        )
        results["agents"] = await measure(n, report("agents"))
        results["agents, business hours"] = await measure(
            n, report("agents", business_hours="true")
        )
        results["campaigns"] = await measure(n, report("campaigns"))
        results["channels csv"] = await measure(n, report("channels", format="csv"))
    return results


async def raw_baseline(url: str, n: int) -> list[float]:
    """The channel volume of a 90-day window straight from `message` (no rollup)."""
    db = Database(url)
    out = []
    try:
        for start, end in windows(n):
            lo = datetime.combine(start, datetime.min.time(), UTC)
            hi = datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC)
            started = time.perf_counter()
            async with db.read() as s:
                await s.execute(
                    select(Message.channel_id, Message.direction, Message.status, func.count())
                    .where(Message.workspace_id == 1, Message.sent_at >= lo, Message.sent_at < hi)
                    .group_by(Message.channel_id, Message.direction, Message.status)
                )
            out.append((time.perf_counter() - started) * 1000)
    finally:
        await db.dispose()
    return out


async def export_rate(base: str) -> dict[str, float]:
    """The per-conversation export of one 90-day window: rows and seconds (streamed)."""
    start, end = windows(1)[0]
    rows = 0
    started = time.perf_counter()
    first_byte = None
    async with (
        httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=600
        ) as c,
        c.stream(
            "GET",
            "/api/v1/reports/export/conversations.csv",
            params={"from": start.isoformat(), "to": end.isoformat()},
        ) as resp,
    ):
        async for chunk in resp.aiter_text():
            if first_byte is None:
                first_byte = time.perf_counter() - started
            rows += chunk.count("\n")
    total = time.perf_counter() - started
    return {
        "rows": rows - 1,
        "first_byte_ms": round((first_byte or 0) * 1000, 1),
        "seconds": round(total, 1),
        "rows_per_second": round((rows - 1) / total),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="a database filled by bench.data.generate")
    parser.add_argument("--requests", type=int, default=20, help="requests per report")
    parser.add_argument("--raw", type=int, default=3, help="raw-table baseline runs (slow)")
    parser.add_argument("--export", action="store_true", help="also time a 90-day export")
    parser.add_argument("--secret-key", default="bench-secret-key-" + "b" * 32)
    args = parser.parse_args()
    asyncio.run(ensure_token(args.url))
    facts = machine_facts()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": args.url,
        "TIDINGS_PORT": str(port),
        "TIDINGS_PUBLIC_URL": base,
        "TIDINGS_SANDBOX": "0",
        "TIDINGS_RUN_WORKERS": "0",
        "TIDINGS_SECRET_KEY": args.secret_key,
        "TIDINGS_LOG_LEVEL": "warning",
    }
    tidings = str(Path(sys.executable).parent / "tidings")
    export = None
    with tempfile.TemporaryDirectory() as tmp:
        env["TIDINGS_DATA_DIR"] = tmp
        with child([tidings, "serve"], env=env, log=Path(tmp) / "serve.log") as proc:
            wait_http(f"{base}/healthz", proc=proc)
            results = asyncio.run(workload(base, args.requests))
            if args.export:
                export = asyncio.run(export_rate(base))
    raw = asyncio.run(raw_baseline(args.url, args.raw)) if args.raw else []
    baseline = statistics.median(results["baseline /healthz"])
    store = "PostgreSQL" if args.url.startswith("postgresql") else "SQLite"
    print(f"\nReports over {DAYS} days — {store}, {args.requests} requests each")
    print(
        f"{'report':34} {'median ms':>10} {'p95 ms':>9} {'median/baseline':>16} {'target p95':>11}"
    )
    summary = {}
    for name, values in results.items():
        row = {"median": statistics.median(values), "p95": pct(values, 0.95)}
        summary[name] = row
        verdict = (
            ""
            if name.startswith("baseline")
            else (f"≤{TARGET_MS:.0f} {'ok' if row['p95'] <= TARGET_MS else 'MISS'}")
        )
        print(
            f"{name:34} {row['median']:10.1f} {row['p95']:9.1f} "
            f"{row['median'] / baseline:16.1f} {verdict:>11}"
        )
    if raw:
        rollup = summary["channels"]["median"]
        print(
            f"{'raw: channel volume from message':34} {statistics.median(raw):10.1f} "
            f"{pct(raw, 0.95):9.1f}   (rollup report is {statistics.median(raw) / rollup:.0f}x faster)"
        )
        summary["raw: channel volume from message"] = {
            "median": statistics.median(raw),
            "p95": pct(raw, 0.95),
        }
    if export:
        print(f"export: {export}")
    facts["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        orjson.dumps(
            {"store": store, "days": DAYS, "machine": facts, "results": summary, "export": export}
        ).decode()
    )


if __name__ == "__main__":
    main()
