"""Ingest with several web processes on PostgreSQL (issue 7): acknowledged webhooks per second
against the same number of bare Starlette processes, measured in the same run.

    python -m bench.ingest.multi --database-url postgresql+asyncpg://postgres@127.0.0.1:PORT/postgres \\
        --redis-url redis://127.0.0.1:PORT/0 [--web 2] [--workers 1] [--seconds 10] [--runs 3]

A fresh database `bench_ingest_multi` is created on that server (an old one is dropped). `--web`
`tidings serve` processes (no in-process workers) take signed WhatsApp webhooks, one wrk per
process at the same time, each with its own unique bodies; `--workers` `tidings worker`
processes turn them into messages. The baseline is `--web` bare Starlette processes driven the
same way. After each run: every acknowledged request is stored (count), nothing is stored twice.
Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from bench.common import WrkResult, child, cpu_seconds, free_port, machine_facts, median, run_wrk
from bench.common import wait_http as wait_up
from bench.ingest.run import LUA, ROOT, BodySet, create_channel, tidings_cli, write_bodies

DB = "bench_ingest_multi"


def _pg(url: str) -> tuple[str, str]:
    """(server URL for asyncpg without a database, SQLAlchemy URL of the bench database)."""
    plain = url.replace("postgresql+asyncpg://", "postgresql://")
    base = plain.rpartition("/")[0]
    return base, f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{DB}"


async def _sql(server: str, database: str, sql: str) -> list[tuple[object, ...]]:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(f"{server}/{database}")
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def sql(server: str, database: str, statement: str) -> list[tuple[object, ...]]:
    return asyncio.run(_sql(server, database, statement))


def show_logs(folder: Path) -> None:
    for log in sorted(folder.glob("*.log")):
        text = log.read_text(errors="replace").strip()
        if text:
            print(f"--- {log.name} (last lines)\n{text[-1500:]}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", required=True, help="a PostgreSQL server")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--web", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32, help="per web process")
    args = parser.parse_args(argv)
    if not 1 <= args.web <= 4 or not 0 <= args.workers <= 4 or not 1 <= args.seconds <= 60:
        parser.error("--web 1..4, --workers 0..4, --seconds 1..60")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (Debian: apt-get install wrk; or scripts/services)")
    server, db_url = _pg(args.database_url)
    sql(server, "postgres", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    sql(server, "postgres", f"CREATE DATABASE {DB}")
    facts = machine_facts()
    rows: list[dict[str, float]] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tidings-multi-")))
        stack.callback(show_logs, tmp)  # after the processes stop, before the directory goes
        shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else tmp
        bodies_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=shm)))
        exe = str(Path(sys.executable).with_name("tidings"))
        ports = [free_port() for _ in range(args.web)]
        base_ports = [free_port() for _ in range(args.web)]
        secret_key = secrets.token_urlsafe(48)

        def env(port: int, name: str, workers: bool) -> dict[str, str]:
            (tmp / name).mkdir(exist_ok=True)
            out = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
            out.update(
                TIDINGS_DATA_DIR=str(tmp / name),
                TIDINGS_DATABASE_URL=db_url,
                TIDINGS_REDIS_URL=args.redis_url,
                TIDINGS_PORT=str(port),
                TIDINGS_PUBLIC_URL=f"http://127.0.0.1:{port}",
                TIDINGS_SANDBOX="0",
                TIDINGS_LOG_LEVEL="warning",
                TIDINGS_RUN_WORKERS="1" if workers else "0",
                # Every process reads the secrets the others encrypted.
                TIDINGS_SECRET_KEY=secret_key,
            )
            return out

        first = env(ports[0], "web0", False)
        tidings_cli(first, "migrate")
        boot = json.loads(
            tidings_cli(first, "bootstrap", "--email", "bench@example.com", "--password", "x" * 16)
        )
        webs = [
            stack.enter_context(
                child([exe, "serve"], env=env(port, f"web{i}", False), log=tmp / f"web{i}.log")
            )
            for i, port in enumerate(ports)
        ]
        for i in range(args.workers):
            worker_env = env(ports[0], f"worker{i}", True)
            stack.enter_context(child([exe, "worker"], env=worker_env, log=tmp / f"worker{i}.log"))
        bases = [
            stack.enter_context(
                child(
                    [sys.executable, "-m", "bench.ingest.baseline", "--port", str(p)],
                    env=os.environ,
                    log=tmp / f"base{p}.log",
                    cwd=ROOT,
                )
            )
            for p in base_ports
        ]
        for port, proc in zip(ports, webs, strict=True):
            wait_up(f"http://127.0.0.1:{port}/healthz", timeout=120, proc=proc)
        for port, proc in zip(base_ports, bases, strict=True):
            wait_up(f"http://127.0.0.1:{port}/", timeout=120, proc=proc)
        channel_id, _hook = create_channel(f"http://127.0.0.1:{ports[0]}", boot["api_token"])
        path = f"/webhooks/whatsapp/{channel_id}"

        def drive(
            urls: list[str], sets: list[BodySet], pids: list[int]
        ) -> tuple[float, int, float]:
            cpu = sum(cpu_seconds(p) for p in pids)
            with ThreadPoolExecutor(len(urls)) as pool:
                results: list[WrkResult] = list(
                    pool.map(
                        lambda pair: run_wrk(
                            pair[0],
                            script=LUA,
                            script_args=[pair[1].prefix],
                            seconds=args.seconds,
                            connections=args.connections,
                            threads=1,
                        ),
                        zip(urls, sets, strict=True),
                    )
                )
            cpu = sum(cpu_seconds(p) for p in pids) - cpu
            ok = sum(r.ok for r in results)
            duration = max(r.duration_s for r in results)
            return ok / duration, ok, cpu / duration

        per_wrk = int(6_000 * (args.seconds + 1))
        base_sets = [write_bodies(bodies_dir, f"b{i}", 1, 5_000) for i in range(args.web)]
        for run in range(1, args.runs + 1):
            b_rps, _b_ok, b_cpu = drive(
                [f"http://127.0.0.1:{p}{path}" for p in base_ports],
                base_sets,
                [p.pid for p in bases],
            )
            sets = [write_bodies(bodies_dir, f"r{run}w{i}", 1, per_wrk) for i in range(args.web)]
            before = int(sql(server, DB, "SELECT count(*) FROM inbound_event")[0][0])  # type: ignore[call-overload]
            t_rps, t_ok, t_cpu = drive(
                [f"http://127.0.0.1:{p}{path}" for p in ports], sets, [p.pid for p in webs]
            )
            time.sleep(3)  # requests in flight when wrk stopped
            stored = int(sql(server, DB, "SELECT count(*) FROM inbound_event")[0][0]) - before  # type: ignore[call-overload]
            dups = int(
                sql(  # type: ignore[call-overload]
                    server,
                    DB,
                    "SELECT count(*) FROM (SELECT event_key FROM inbound_event "
                    "GROUP BY channel_id, event_key HAVING count(*) > 1) d",
                )[0][0]
            )
            for s in sets:
                s.remove()
            rows.append(
                {
                    "baseline_rps": b_rps,
                    "tidings_rps": t_rps,
                    "ratio": t_rps / b_rps,
                    "acked": t_ok,
                    "stored": stored,
                    "duplicates": dups,
                    "baseline_cores": b_cpu,
                    "tidings_cores": t_cpu,
                }
            )
            print(
                f"run {run}: baseline {b_rps:,.0f}/s ({b_cpu:.2f} cores), tidings {t_rps:,.0f}/s "
                f"({t_cpu:.2f} cores), ratio {t_rps / b_rps:.2f}; acked {t_ok:,}, stored {stored:,}, "
                f"duplicates {dups}",
                file=sys.stderr,
                flush=True,
            )
        pending = int(
            sql(server, DB, "SELECT count(*) FROM inbound_event WHERE state = 'pending'")[0][0]  # type: ignore[call-overload]
        )
    durable = all(r["stored"] >= r["acked"] and r["duplicates"] == 0 for r in rows)
    print(
        f"\nIngest on PostgreSQL, {args.web} web + {args.workers} worker process(es), "
        f"{args.connections} connections per web process; load average before "
        f"{facts['load_before']} on {facts['nproc']} CPUs"
    )
    print(
        f"median: baseline {median([r['baseline_rps'] for r in rows]):,.0f} req/s, Tidings "
        f"{median([r['tidings_rps'] for r in rows]):,.0f} acknowledged/s, ratio "
        f"{median([r['ratio'] for r in rows]):.2f}; durable {'yes' if durable else 'NO'}; "
        f"{pending:,} events still pending for the worker(s) at the end"
    )
    print(json.dumps({"runs": rows, "machine": facts, "web": args.web, "workers": args.workers}))
    sql(server, "postgres", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    return 0 if durable else 1


if __name__ == "__main__":
    raise SystemExit(main())
