"""Read benchmarks on a generated data set (bench/data/generate.py): the inbox list with each
filter and deep keyset pages, opening a thread, contact search and message full-text search,
measured through the real HTTP API of a `tidings serve` process. Each request type's latency is
reported as p50/p95/p99 and as a ratio to the same run's baseline (GET /healthz, which touches
no database), so figures stay comparable on a noisy machine.

    python -m bench.reads.run --url postgresql+asyncpg://.../bench1m --requests 200
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import orjson

from bench.common import child, free_port, machine_facts, wait_http
from bench.data.generate import AGENTS, INBOXES, LABELS, WORDS

TOKEN = "tid_bench_reads_token"  # noqa: S105 — a bench-only token it inserts itself
TARGETS_MS = {"list": 30.0, "thread": 20.0, "search": 200.0}


async def ensure_token(url: str) -> None:
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    sql = (
        "INSERT INTO api_token (workspace_id, agent_id, name, token_hash, created_at) "
        f"SELECT 1, 1, 'bench', '{digest}', CURRENT_TIMESTAMP WHERE NOT EXISTS "
        f"(SELECT 1 FROM api_token WHERE token_hash = '{digest}')"
    )
    if url.startswith("postgresql"):
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
    else:
        import sqlite3

        db = sqlite3.connect(url.split(":///", 1)[1])
        db.execute(sql)
        db.commit()
        db.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(n: int, call: Callable[[int], Awaitable[httpx.Response]]) -> list[float]:
    out = []
    for i in range(n):
        started = time.perf_counter()
        resp = await call(i)
        out.append((time.perf_counter() - started) * 1000)
        if resp.status_code != 200:
            raise RuntimeError(f"{resp.request.url} -> {resp.status_code}: {resp.text[:200]}")
    return out


async def workload(base: str, conversations: int, n: int, seed: int) -> dict[str, list[float]]:
    rng = random.Random(seed)
    results: dict[str, list[float]] = {}
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    ) as c:
        for _ in range(20):  # warm connections and caches
            await c.get("/api/v1/conversations")

        async def get(path: str, **params: object) -> httpx.Response:
            return await c.get(path, params={k: v for k, v in params.items() if v is not None})

        results["baseline /healthz"] = await measure(n, lambda i: c.get("/healthz"))
        results["list: newest"] = await measure(n, lambda i: get("/api/v1/conversations"))
        results["list: status=open"] = await measure(
            n, lambda i: get("/api/v1/conversations", status="open")
        )
        results["list: mine"] = await measure(
            n, lambda i: get("/api/v1/conversations", assignee_id="me")
        )
        results["list: unassigned"] = await measure(
            n, lambda i: get("/api/v1/conversations", assignee_id="none")
        )
        results["list: inbox"] = await measure(
            n, lambda i: get("/api/v1/conversations", inbox_id=1 + i % INBOXES)
        )
        results["list: assignee"] = await measure(
            n, lambda i: get("/api/v1/conversations", assignee_id=1 + i % AGENTS)
        )
        results["list: label"] = await measure(
            n, lambda i: get("/api/v1/conversations", label=f"label-{1 + i % LABELS}")
        )
        results["list: channel"] = await measure(
            n, lambda i: get("/api/v1/conversations", channel_id=1 + i % 4)
        )

        # Deep keyset paging: follow next_cursor page after page.
        cursor: list[str | None] = [None]

        async def page(i: int) -> httpx.Response:
            if i % 50 == 0:
                cursor[0] = None
            resp = await get("/api/v1/conversations", limit=25, cursor=cursor[0])
            cursor[0] = resp.json().get("next_cursor")
            return resp

        results["list: keyset pages (50 deep)"] = await measure(n, page)
        results["thread: open"] = await measure(
            n,
            lambda i: get(
                f"/api/v1/conversations/{rng.randint(1, conversations)}/messages", limit=50
            ),
        )
        results["search: contact name"] = await measure(
            n,
            lambda i: get(
                "/api/v1/contacts", q=f"Customer {rng.randint(1, conversations)}", limit=20
            ),
        )
        results["search: contact phone"] = await measure(
            n,
            lambda i: get("/api/v1/contacts", q=f"15{rng.randint(1, conversations):09d}", limit=20),
        )
        results["search: message words"] = await measure(
            n,
            lambda i: get(
                "/api/v1/messages/search", q=f"{rng.choice(WORDS)} {rng.choice(WORDS)}", limit=20
            ),
        )
    return results


def category(name: str) -> str | None:
    head = name.split(":", 1)[0]
    return {"list": "list", "thread": "thread", "search": "search"}.get(head)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="a database filled by bench.data.generate")
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="requests per request type")
    parser.add_argument("--secret-key", default="bench-secret-key-" + "b" * 32)
    args = parser.parse_args()
    asyncio.run(ensure_token(args.url))
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
    with tempfile.TemporaryDirectory() as tmp:
        env["TIDINGS_DATA_DIR"] = tmp
        with child([tidings, "serve"], env=env, log=Path(tmp) / "serve.log") as proc:
            wait_http(f"{base}/healthz", proc=proc)
            results = asyncio.run(workload(base, args.conversations, args.requests, seed=11))
    baseline = statistics.median(results["baseline /healthz"])
    store = "PostgreSQL" if args.url.startswith("postgresql") else "SQLite"
    print(
        f"\nRead benchmarks — {store}, {args.conversations:,} conversations, {args.requests} requests each"
    )
    print(
        f"{'request':34} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'p50/baseline':>13} {'target p95':>11}"
    )
    summary = {}
    for name, values in results.items():
        cat = category(name)
        target = TARGETS_MS.get(cat or "")
        row = {"p50": pct(values, 0.5), "p95": pct(values, 0.95), "p99": pct(values, 0.99)}
        summary[name] = row
        verdict = (
            "" if target is None else (f"≤{target:.0f} {'ok' if row['p95'] <= target else 'MISS'}")
        )
        print(
            f"{name:34} {row['p50']:8.2f} {row['p95']:8.2f} {row['p99']:8.2f} {row['p50'] / baseline:13.1f} {verdict:>11}"
        )
    print(
        orjson.dumps(
            {
                "store": store,
                "conversations": args.conversations,
                "machine": machine_facts(),
                "results": summary,
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
