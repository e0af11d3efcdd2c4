"""Campaign sends per second on LINE, with multicast and without, in the same run:
`python -m bench.line_multicast`.

Tidings (web + all workers, SQLite unless `--database-url`) runs in this process as `tidings
serve` does, started afresh for every run on a fresh copy of a migrated database (so no run
pays for the previous campaign's report rollup); the LINE simulator runs in a child process (bench/line_multicast/sim.py) with
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
import shutil
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


async def one_run(args: argparse.Namespace, sim_url: str, label: str, i: int) -> float:
    """One campaign on a fresh copy of the migrated database, Tidings started for it: each
    run meets the same empty install (otherwise a later campaign pays for the report rollup
    of the previous one's messages, whatever the mode)."""
    work = args.work / f"{label}-{i}"
    work.mkdir()
    url = args.database_url
    if url.startswith("sqlite"):
        shutil.copy(args.work / "template.db", work / "tidings.db")
        url = f"sqlite+aiosqlite:///{work / 'tidings.db'}"
    token = f"{TOKEN}-{label}-{i}"
    async with (
        tidings_in_process(work, url, run_workers=True) as tidings,
        tidings.api(timeout=60) as api,
        httpx.AsyncClient(base_url=sim_url, timeout=60) as sim,
    ):
        users = await seed(tidings.runtime, tidings.owner["workspace_id"], args.n)
        put = await sim.put(
            "/_sim/channels", json={"channel_access_token": token, "channel_secret": SECRET}
        )
        put.raise_for_status()
        for j in range(0, len(users), 5000):
            r = await sim.post(
                "/_sim/friends", json={"token": token, "user_ids": users[j : j + 5000]}
            )
            r.raise_for_status()
        made = await api.post(
            "/api/v1/channels",
            json={
                "kind": "line",
                "name": "LINE bench",
                "config": {
                    "channel_secret": SECRET,
                    "channel_access_token": token,
                    "api_base_url": sim_url,
                    "data_api_base_url": sim_url,
                },
            },
        )
        made.raise_for_status()
        rate = await campaign(api, int(made.json()["id"]), args.n, label)
        calls = (await sim.get("/_sim/sent", params={"token": token})).json()
        print(f"    {label}: {rate:.1f}/s in {len(calls)} provider calls", file=sys.stderr)
        return rate


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_facts(), "n": args.n}
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    env = {**os.environ, "PYTHONPATH": ROOT}
    shipped = delivery_worker.plan_multicasts
    argv = [sys.executable, "-m", "bench.line_multicast.sim", str(sim_port)]
    rates: dict[str, list[float]] = {"multicast": [], "push": []}
    with child(argv, env=env, log=args.work / "sim.log"):
        await asyncio.to_thread(wait_http, f"{sim_url}/_sim/sent")
        for i in range(args.repeat):
            # Alternate which goes first.
            order = ("multicast", "push") if i % 2 == 0 else ("push", "multicast")
            for label in order:
                delivery_worker.plan_multicasts = shipped if label == "multicast" else alone
                print(f"run {i + 1}/{args.repeat} {label}", file=sys.stderr)
                rates[label].append(await one_run(args, sim_url, label, i))
        delivery_worker.plan_multicasts = shipped
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
    parser.add_argument(
        "--database-url", default=None, help="SQLite only (each run copies the template)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out/line_multicast.json"))
    args = parser.parse_args()
    if args.database_url and not args.database_url.startswith("sqlite"):
        parser.error("each run needs a fresh database: SQLite only for now")
    args.work = Path(tempfile.mkdtemp(prefix="bench-line-multicast-"))
    args.database_url = args.database_url or f"sqlite+aiosqlite:///{args.work / 'template.db'}"
    migrate(args.database_url)  # SQLite: the template each run copies
    tune_gc()
    results = uvloop.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
