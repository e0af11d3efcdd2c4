"""Campaign sends per second on LINE, with multicast and without, in the same run:
`python -m bench.line_multicast`.

Tidings (web + all workers, SQLite unless `--database-url`) runs in this process as `tidings
serve` does; the LINE simulator runs in a child process (bench/line_multicast/sim.py) with
LINE's own limits. N LINE friends (contacts with a LINE identity, inserted directly, and
friends of the simulated account) get one campaign of the same text per run. The runs
alternate (and which goes first alternates too): **multicast** (the delivery worker as shipped: calls of up to 500 user ids) and
**push** (the same worker with `plan_multicasts` replaced by "everything goes alone", i.e. one
push per recipient — the behaviour before multicast). The rate is recipients / seconds from
launch until no recipient is pending or queued; the medians and their ratio are printed.

    python -m bench.line_multicast                 # N=5,000, 3 runs of each
    python -m bench.line_multicast --n 20000 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import uvloop
from sqlalchemy import insert

from bench.campaigns.__main__ import tidings_in_process
from bench.common import child, free_port, machine_facts, wait_http
from tidings.delivery import worker as delivery_worker
from tidings.runtime import Runtime, tune_gc
from tidings.storage.db import migrate
from tidings.storage.models import Contact, ContactIdentity

ROOT = str(Path(__file__).resolve().parents[2])
TOKEN = "bench-line-token"  # noqa: S105 (the simulator's fake credential)
SECRET = "bench-line-secret"  # noqa: S105


async def alone(rt: Runtime, me: str, jobs: list[Any]) -> tuple[list[Any], list[Any]]:
    """`plan_multicasts` as if no adapter had the capability: one send per message."""
    return jobs, []


async def seed(rt: Runtime, workspace_id: int, n: int) -> list[str]:
    users = [f"U{i + 1:032x}" for i in range(n)]
    async with rt.db.write() as s:
        for i in range(0, n, 1000):
            chunk = users[i : i + 1000]
            ids = (
                await s.scalars(
                    insert(Contact).returning(Contact.id),
                    [
                        {"workspace_id": workspace_id, "name": f"Friend {u[-6:]}", "attributes": {}}
                        for u in chunk
                    ],
                )
            ).all()
            await s.execute(
                insert(ContactIdentity),
                [
                    {
                        "workspace_id": workspace_id,
                        "contact_id": cid,
                        "channel_kind": "line",
                        "address": u,
                    }
                    for cid, u in zip(ids, chunk, strict=True)
                ],
            )
    return users


async def campaign(api: httpx.AsyncClient, channel_id: int, n: int, label: str) -> float:
    created = await api.post(
        "/api/v1/campaigns",
        json={
            "name": f"bench {label} {time.time_ns()}",
            "content": {"text": "Spring sale: 20% off this week"},
            "audience": {"all_contacts": True},
            "channel_ids": [channel_id],
        },
    )
    created.raise_for_status()
    cid = created.json()["id"]
    started = time.perf_counter()
    (await api.post(f"/api/v1/campaigns/{cid}/launch", timeout=600)).raise_for_status()
    while True:
        await asyncio.sleep(0.25)
        counts = (await api.get(f"/api/v1/campaigns/{cid}")).json()["counts"]
        left = counts["pending"] + counts["queued"]
        print(f"    {label}: {counts['total'] - left}/{n}", end="\r", file=sys.stderr)
        if left == 0:
            break
    elapsed = time.perf_counter() - started
    print(file=sys.stderr)
    if counts.get("failed"):
        raise RuntimeError(f"{counts['failed']} recipients failed: {counts}")
    return n / elapsed


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_facts(), "n": args.n}
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    env = {**os.environ, "PYTHONPATH": ROOT}
    shipped = delivery_worker.plan_multicasts
    argv = [sys.executable, "-m", "bench.line_multicast.sim", str(sim_port)]
    with child(argv, env=env, log=args.work / "sim.log"):
        await asyncio.to_thread(wait_http, f"{sim_url}/_sim/sent")
        async with (
            tidings_in_process(args.work, args.database_url, run_workers=True) as tidings,
            tidings.api(timeout=60) as api,
            httpx.AsyncClient(base_url=sim_url, timeout=60) as sim,
        ):
            users = await seed(tidings.runtime, tidings.owner["workspace_id"], args.n)
            put = await sim.put(
                "/_sim/channels",
                json={"channel_access_token": TOKEN, "channel_secret": SECRET},
            )
            put.raise_for_status()
            for i in range(0, len(users), 5000):
                r = await sim.post(
                    "/_sim/friends", json={"token": TOKEN, "user_ids": users[i : i + 5000]}
                )
                r.raise_for_status()
            made = await api.post(
                "/api/v1/channels",
                json={
                    "kind": "line",
                    "name": "LINE bench",
                    "config": {
                        "channel_secret": SECRET,
                        "channel_access_token": TOKEN,
                        "api_base_url": sim_url,
                        "data_api_base_url": sim_url,
                    },
                },
            )
            made.raise_for_status()
            channel_id = int(made.json()["id"])
            rates: dict[str, list[float]] = {"multicast": [], "push": []}
            for i in range(args.repeat):
                # Alternate which goes first: later campaigns meet a bigger database.
                order = ("multicast", "push") if i % 2 == 0 else ("push", "multicast")
                for label in order:
                    delivery_worker.plan_multicasts = shipped if label == "multicast" else alone
                    print(f"run {i + 1}/{args.repeat} {label}", file=sys.stderr)
                    rates[label].append(await campaign(api, channel_id, args.n, label))
            delivery_worker.plan_multicasts = shipped
            calls = (await sim.get("/_sim/sent", params={"token": TOKEN})).json()
    by_endpoint: dict[str, int] = {}
    for c in calls:
        key = f"{c['endpoint']} {c['status']}"
        by_endpoint[key] = by_endpoint.get(key, 0) + 1
    results["provider_calls"] = by_endpoint
    for label, values in rates.items():
        results[label] = {
            "sends_per_second": [round(v, 1) for v in values],
            "median": round(statistics.median(values), 1),
        }
    results["ratio_multicast_to_push"] = round(
        results["multicast"]["median"] / results["push"]["median"], 2
    )
    results["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="LINE friends in each campaign")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="an empty, unmigrated database")
    parser.add_argument("--out", type=Path, default=Path("bench/out/line_multicast.json"))
    args = parser.parse_args()
    args.work = Path(tempfile.mkdtemp(prefix="bench-line-multicast-"))
    args.database_url = args.database_url or f"sqlite+aiosqlite:///{args.work / 'tidings.db'}"
    migrate(args.database_url)
    tune_gc()
    results = uvloop.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
