"""Webhook → agent browser latency under sustained load (issue 7: p99 ≤ 100 ms at 500 msg/s).

An agent's browser is an SSE client on `/api/v1/events`; a provider is a client posting signed
API-channel webhooks. The run sends messages open-loop at a fixed rate (each message has a
scheduled send time; a late send counts against us, so a saturated server cannot hide behind
coordinated omission) and times scheduled send → the agent's `message.created` event.

Same-run baseline: the same measurement at a trickle (5 messages/s), so the ratio shows what
load costs, whatever the machine's speed.

    python -m bench.latency.run                               # SQLite, one `tidings serve`
    python -m bench.latency.run --database-url postgresql+asyncpg://postgres@127.0.0.1:PORT/postgres \\
        --redis-url redis://127.0.0.1:PORT/0 --web 2 --workers 2

With PostgreSQL a database `bench_latency` is created afresh on that server (dropped first if it
exists). Webhooks go round robin to the web processes; the agent is connected to the last one,
so with --web 2 half the messages cross processes through Redis. Loopback only, bounded in
count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson

from bench.common import child, free_port, machine_facts, wait_http
from bench.sse.run import Client, pct
from tidings import signing

SECRET = "bench-latency-secret-0123456789"  # noqa: S105 — the bench channel it creates itself
# One key for every process of a run: each has a data dir of its own, where a generated key
# would differ, and a worker that cannot decrypt the channel's config processes nothing.
SECRET_KEY = "bench-latency-secret-key-" + "k" * 32
TARGET_P99_MS = 100.0
SENDERS = 200
BENCH_DB = "bench_latency"


def fresh_postgres(url: str) -> str:
    """Create `bench_latency` on the server of `url` (dropping an old one); return its URL."""
    import asyncpg  # type: ignore[import-untyped]

    plain = url.replace("postgresql+asyncpg://", "postgresql://")
    base, _, _db = plain.rpartition("/")

    async def create() -> None:
        conn = await asyncpg.connect(f"{base}/postgres")
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {BENCH_DB}")
        finally:
            await conn.close()

    asyncio.run(create())
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{BENCH_DB}"


async def measure(
    web_ports: list[int],
    agent_port: int,
    token: str,
    channel_id: int,
    *,
    rate: float,
    seconds: float,
    tag: str,
) -> dict[str, float]:
    agent = Client(agent_port, token)
    reader = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.ready.wait(), 30)
    total = max(1, round(rate * seconds))
    scheduled: dict[str, float] = {}
    acked = 0
    failed = 0
    in_flight = asyncio.Semaphore(256)
    clients = [
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{p}",
            timeout=30,
            limits=httpx.Limits(max_connections=128, max_keepalive_connections=128),
        )
        for p in web_ports
    ]
    targets = itertools.cycle(clients)

    async def post(http: httpx.AsyncClient, marker: str, sender: int) -> None:
        nonlocal acked, failed
        body = orjson.dumps(
            {
                "messages": [
                    {
                        "id": marker,
                        "from": {"id": f"lat-{sender}"},
                        "text": marker,
                        "timestamp": int(time.time()),
                    }
                ]
            }
        )
        try:
            resp = await http.post(
                f"/webhooks/api/{channel_id}",
                content=body,
                headers=signing.sign_headers(SECRET, body),
            )
            if resp.status_code == 200:
                acked += 1
            else:
                failed += 1
        except httpx.HTTPError:
            failed += 1
        finally:
            in_flight.release()

    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter() + 0.1
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await in_flight.acquire()
        marker = f"{tag}-{i}"
        scheduled[marker] = due
        tasks.append(asyncio.create_task(post(next(targets), marker, i % SENDERS)))
    sent_s = time.perf_counter() - start
    await asyncio.gather(*tasks)
    # Let the backlog drain (bounded), then read what the agent saw.
    deadline = time.perf_counter() + 60
    while len(agent.seen.keys() & scheduled.keys()) < acked and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    for c in clients:
        await c.aclose()
    lat = [(agent.seen[m] - at) * 1000 for m, at in scheduled.items() if m in agent.seen]
    return {
        "messages": total,
        "offered_rate": total / sent_s,
        "acked": acked,
        "failed": failed,
        "seen": len(lat),
        "p50": pct(lat, 0.5),
        "p95": pct(lat, 0.95),
        "p99": pct(lat, 0.99),
        "max": max(lat) if lat else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rate", type=float, default=500.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds at that rate")
    parser.add_argument("--database-url", help="PostgreSQL server to use (default: SQLite)")
    parser.add_argument("--redis-url", help="Redis (needed with more than one process)")
    parser.add_argument("--web", type=int, default=1, help="web processes (tidings serve)")
    parser.add_argument(
        "--workers", type=int, default=0, help="separate worker processes (0: in-process)"
    )
    parser.add_argument(
        "--all-loop-workers",
        action="store_true",
        help="every worker runs every loop (default with 2+: worker 0 `inbound`, the rest"
        " `background`)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.rate <= 2000 or not 1 <= args.seconds <= 120:
        parser.error("--rate must be within 1..2000 and --seconds within 1..120")
    if (args.web > 1 or args.workers > 0) and not (args.database_url and args.redis_url):
        parser.error("several processes need --database-url (PostgreSQL) and --redis-url")
    tidings = str(Path(sys.executable).parent / "tidings")
    facts = machine_facts()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tidings-lat-")))
        db_url = (
            fresh_postgres(args.database_url)
            if args.database_url
            else f"sqlite+aiosqlite:///{tmp}/tidings.db"
        )
        ports = [free_port() for _ in range(args.web)]

        def env_for(port: int, name: str) -> dict[str, str]:
            env = {
                **os.environ,
                "TIDINGS_DATA_DIR": str(tmp / name),
                "TIDINGS_DATABASE_URL": db_url,
                "TIDINGS_SECRET_KEY": SECRET_KEY,
                "TIDINGS_PORT": str(port),
                "TIDINGS_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "TIDINGS_SANDBOX": "0",
                "TIDINGS_LOG_LEVEL": "warning",
                "TIDINGS_RUN_WORKERS": "0" if args.workers else "1",
            }
            if args.redis_url:
                env["TIDINGS_REDIS_URL"] = args.redis_url
            (tmp / name).mkdir(exist_ok=True)
            return env

        first = env_for(ports[0], "web0")
        subprocess.run([tidings, "migrate"], env=first, check=True, capture_output=True)
        boot = json.loads(
            subprocess.run(
                [tidings, "bootstrap", "--email", "b@x.test", "--password", "pw-pw-pw-pw"],
                env=first,
                check=True,
                capture_output=True,
            ).stdout
        )
        token = boot["api_token"]
        for i, port in enumerate(ports):
            proc = stack.enter_context(
                child([tidings, "serve"], env=env_for(port, f"web{i}"), log=tmp / f"web{i}.log")
            )
            wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        for i in range(args.workers):
            worker_env = {**env_for(ports[0], f"worker{i}"), "TIDINGS_RUN_WORKERS": "1"}
            if args.workers > 1 and not args.all_loop_workers:
                # The documented layout (docs/operations.md, "Sizing the lanes").
                worker_env["TIDINGS_WORKERS"] = "inbound" if i == 0 else "background"
            stack.enter_context(child([tidings, "worker"], env=worker_env, log=tmp / f"w{i}.log"))
        resp = httpx.post(
            f"http://127.0.0.1:{ports[0]}/api/v1/channels",
            headers={"Authorization": f"Bearer {token}"},
            json={"kind": "api", "name": "bench", "config": {"secret": SECRET}},
        )
        resp.raise_for_status()
        channel_id = resp.json()["id"]
        # Warm up (contacts and conversations for every sender exist afterwards, as in a
        # steady state), then the trickle baseline, then the load.
        asyncio.run(
            measure(ports, ports[-1], token, channel_id, rate=100, seconds=SENDERS / 100, tag="w")
        )
        base = asyncio.run(
            measure(ports, ports[-1], token, channel_id, rate=5, seconds=6, tag="base")
        )
        load = asyncio.run(
            measure(
                ports,
                ports[-1],
                token,
                channel_id,
                rate=args.rate,
                seconds=args.seconds,
                tag="load",
            )
        )
    topology = (
        f"{'PostgreSQL' if args.database_url else 'SQLite'}, {args.web} web, "
        f"{args.workers or 'in-process'} worker(s)"
        + (" (inbound + background)" if args.workers > 1 and not args.all_loop_workers else "")
    )
    print(f"\nWebhook → agent SSE latency — {topology}; load average before {facts['load_before']}")
    print(f"{'phase':>10} {'rate/s':>8} {'acked':>7} {'seen':>7} {'p50':>8} {'p95':>8} {'p99':>8}")
    for name, r in (("trickle", base), ("load", load)):
        print(
            f"{name:>10} {r['offered_rate']:8.0f} {r['acked']:7.0f} {r['seen']:7.0f} "
            f"{r['p50']:8.1f} {r['p95']:8.1f} {r['p99']:8.1f}"
        )
    verdict = "met" if load["p99"] <= TARGET_P99_MS and load["seen"] == load["acked"] else "MISSED"
    print(
        f"p99 under load {load['p99']:.0f} ms (target ≤ {TARGET_P99_MS:.0f} ms: {verdict}); "
        f"ratio to the trickle p99 {load['p99'] / base['p99']:.1f}"
    )
    print(
        orjson.dumps(
            {"topology": topology, "trickle": base, "load": load, "machine": facts}
        ).decode()
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
