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
import uvicorn
import uvloop
from sqlalchemy import func, select

from bench.campaigns.__main__ import ROOT, TEMPLATE, Bench, numbers
from bench.common import child, free_port, wait_http
from tidings.actions.admin import bootstrap
from tidings.app import create_app
from tidings.campaigns import fanout
from tidings.config import load_settings
from tidings.delivery import worker as delivery
from tidings.reports import rollup
from tidings.runtime import tune_gc
from tidings.storage.db import migrate
from tidings.storage.models import Delivery


async def main(n: int, work: Path) -> None:
    url = f"sqlite+aiosqlite:///{work / 'tidings.db'}"
    port, sim_port = free_port(), free_port()
    settings = load_settings(
        database_url=url,
        data_dir=work / "data",
        redis_url=None,
        secret_key="bench-secret-key-" + "z" * 32,
        public_url=f"http://127.0.0.1:{port}",
        sandbox=False,
        host="127.0.0.1",
        port=port,
        run_workers=False,
        log_level="warning",
    )
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.05)
    rt = app.state.runtime
    owner = await bootstrap(rt, "bench@example.com", "bench password 1", "Bench")
    sim_url = f"http://127.0.0.1:{sim_port}"
    argv = [sys.executable, "-m", "bench.campaigns.sim", str(sim_port), "1000000"]
    env = {**os.environ, "PYTHONPATH": ROOT}
    fanout.MAX_OUTSTANDING = n  # the fan-out runs alone here: let it queue everyone
    try:
        with child(argv, env=env, log=work / "sim.log"):
            await asyncio.to_thread(wait_http, f"{sim_url}/bench/times")
            async with (
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}",
                    headers={"Authorization": f"Bearer {owner['api_token']}"},
                    timeout=600,
                ) as api,
                httpx.AsyncClient(base_url=sim_url, timeout=60) as sim,
            ):
                bench = Bench(api, sim, settings.public_url)
                channel_id = await bench.channel(1000)
                c = await api.post(
                    "/api/v1/campaigns",
                    json={
                        "name": "stages",
                        "content": {"template": TEMPLATE},
                        "channel_ids": [channel_id],
                    },
                )
                cid = c.json()["id"]
                body = "phone,name\n" + "".join(f"{p},Customer {p[-4:]}\n" for p in numbers(n, 0))
                up = await api.post(
                    f"/api/v1/campaigns/{cid}/audience/csv",
                    content=body.encode(),
                    headers={"Content-Type": "text/csv"},
                )
                assert up.json()["added"] == n, up.json()
                (await api.post(f"/api/v1/campaigns/{cid}/launch")).raise_for_status()
            await rollup.drain(rt)

            fan_profile = cProfile.Profile() if os.environ.get("STAGES_PROFILE_FANOUT") else None
            if fan_profile:
                fan_profile.enable()
            cpu, wall = cpu_now(), time.perf_counter()
            while await fanout.step(rt, cid, fanout.BATCH):
                pass
            report("fan-out", n, cpu, wall)
            if fan_profile:
                fan_profile.disable()
                fan_profile.dump_stats(os.environ["STAGES_PROFILE_FANOUT"])
            if os.environ.get("STAGES_PAUSE"):  # time to attach a profiler to the next stage
                print(f"READY {os.getpid()}", flush=True)
                await asyncio.sleep(float(os.environ["STAGES_PAUSE"]))

            profile = cProfile.Profile() if os.environ.get("STAGES_PROFILE") else None
            if profile:
                profile.enable()
            cpu, wall = cpu_now(), time.perf_counter()
            task = asyncio.create_task(delivery.run(rt))
            while True:
                await asyncio.sleep(0.1)
                async with rt.db.read() as s:
                    left = await s.scalar(
                        select(func.count()).select_from(Delivery).where(Delivery.state != "done")
                    )
                if not left:
                    break
            report("delivery (claim, send, record)", n, cpu, wall)
            if profile:
                profile.disable()
                profile.dump_stats(os.environ["STAGES_PROFILE"])
            task.cancel()

            cpu, wall = cpu_now(), time.perf_counter()
            marks = await rollup.drain(rt)
            report(f"report rollup ({marks} marks)", n, cpu, wall)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 60)


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
