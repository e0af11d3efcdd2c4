"""Where a campaign message's CPU goes, stage by stage: `python -m bench.campaigns.stages`.

The campaign benchmark runs every worker at once, so its CPU per send is one number. Here the
stages run one after another in this process, each alone, with the process's CPU time measured
around it: the fan-out (`fanout.step` until every recipient is queued), the delivery worker
(claim, send to the WhatsApp simulator in a child process, record) until every message is sent,
and the report rollup (`rollup.drain`). Figures are CPU milliseconds per message (SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvloop
from sqlalchemy import func, select

from bench.campaigns.__main__ import ROOT, Bench, tidings_in_process
from bench.common import child, free_port, wait_http
from tidings.campaigns import fanout
from tidings.delivery import worker as delivery
from tidings.reports import rollup
from tidings.runtime import Runtime, tune_gc
from tidings.storage.db import migrate
from tidings.storage.models import Delivery


async def main(n: int, work: Path) -> None:
    url = f"sqlite+aiosqlite:///{work / 'tidings.db'}"
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    argv = [sys.executable, "-m", "bench.campaigns.sim", str(sim_port), "1000000"]
    env = {**os.environ, "PYTHONPATH": ROOT}
    fanout.MAX_OUTSTANDING = n  # the fan-out runs alone here: let it queue everyone
    profiles = os.environ.get("STAGES_PROFILE")  # a directory: cProfile output per stage
    async with tidings_in_process(work, url, run_workers=False) as tidings:
        rt = tidings.runtime
        with child(argv, env=env, log=work / "sim.log"):
            await asyncio.to_thread(wait_http, f"{sim_url}/bench/times")
            async with (
                tidings.api(timeout=600) as api,
                httpx.AsyncClient(base_url=sim_url, timeout=60) as sim,
            ):
                bench = Bench(api, sim, tidings.settings.public_url)
                cid = await bench.prepare(n, [await bench.channel(1000)], None)
                (await api.post(f"/api/v1/campaigns/{cid}/launch")).raise_for_status()
            await rollup.drain(rt)

            async def fan_out() -> None:
                while await fanout.step(rt, cid, fanout.BATCH):
                    pass

            async def deliver() -> None:
                task = asyncio.create_task(delivery.run(rt))
                while await unsent(rt):  # noqa: ASYNC110 (a poll of the database, no event)
                    await asyncio.sleep(0.1)
                task.cancel()

            async def roll_up() -> None:
                await rollup.drain(rt)

            for stage, run in (
                ("fan-out", fan_out),
                ("delivery (claim, send, record)", deliver),
                ("report rollup", roll_up),
            ):
                profile = cProfile.Profile() if profiles else None
                if profile:
                    profile.enable()
                cpu, wall = cpu_now(), time.perf_counter()
                await run()
                report(stage, n, cpu, wall)
                if profile and profiles:
                    profile.disable()
                    profile.dump_stats(Path(profiles) / f"{run.__name__}.prof")


async def unsent(rt: Runtime) -> int:
    async with rt.db.read() as s:
        return int(
            await s.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.state != "done")
            )
            or 0
        )


def report(stage: str, n: int, cpu: tuple[float, float], wall: float) -> None:
    user, system = (a - b for a, b in zip(cpu_now(), cpu, strict=True))
    print(
        f"{stage:34s} {(user + system) / n * 1000:6.3f} ms CPU per message"
        f" (user {user / n * 1000:.3f}, system {system / n * 1000:.3f};"
        f" {time.perf_counter() - wall:.2f} s wall)",
        flush=True,
    )


def cpu_now() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tidings-stages-") as tmp:
        migrate(f"sqlite+aiosqlite:///{Path(tmp) / 'tidings.db'}")  # alembic: before our loop
        tune_gc()  # as `tidings serve`, which also runs on uvloop
        uvloop.run(main(args.n, Path(tmp)))
