"""Campaign send rate against the WhatsApp simulator: `python -m bench.campaigns`.

(a) capped: a campaign of N recipients with `rate_per_second` 80 (WhatsApp's default tier):
    the achieved rate must be within 2 % of the cap and no one-second window above it;
(b) uncapped: no campaign cap, over `--numbers` WhatsApp numbers (default 2) at the top tier
    (`messages_per_second` 1000 each: one number can never send 1,500/s;
    docs/channels/whatsapp.md#throughput-and-pair-limits), sharing
    the campaign; the simulator's throughput limit lifted (each number's fullest second is
    reported): sends per second (target >= 1,500), next to a same-run baseline: the
    simulator's raw rate from a plain loop on Tidings' own HTTP client (same payload, the
    delivery worker's concurrency of 32), and the ratio.

Tidings (web + all workers) runs in this process, as `tidings serve` does; the simulator runs
in a child process (bench/campaigns/sim.py) and stamps every accepted send, so the rates are the
provider's view. Each scenario runs `--repeat` times; the medians are printed. Status webhooks
are off (the simulator sends none): the figure is the send path, not receipts.

    python -m bench.campaigns                  # a few minutes: N=2,400 capped, 5,000 uncapped
    python -m bench.campaigns --full           # 100,000 recipients each (the issue's size)
    python -m bench.campaigns --database-url postgresql+asyncpg://...   # an EMPTY database
    python -m bench.campaigns --delivery-process   # sends from a dedicated `tidings worker`
    python -m bench.campaigns --delivery-process --queue-first   # that process alone

`--delivery-process` runs the delivery worker as its own process (`tidings worker` with
`TIDINGS_WORKERS=delivery`, as an operator would scale out) while this process keeps the web
and every other worker (the fan-out, the report rollup); its CPU per send is printed too.
`--queue-first` also lets the fan-out queue the whole campaign before that process starts, so
the figure is one sending process draining a queued campaign, nothing else running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
import uvloop

from bench.common import child, cpu_seconds, free_port, machine_facts, wait_http
from tidings.actions.admin import bootstrap
from tidings.app import create_app
from tidings.campaigns import fanout
from tidings.config import Settings, load_settings
from tidings.httpclient import outbound_client, post
from tidings.runtime import Runtime, tune_gc
from tidings.storage.db import migrate
from tidings.workers.registry import SESSIONS, WORKERS

ROOT = str(Path(__file__).resolve().parents[2])
PNID = "100000000000999"  # the first number; others count up from it
TOKEN = "bench-access-token"  # noqa: S105 (the simulator's fake credential)
APP_SECRET = "bench-app-secret"  # noqa: S105
TEMPLATE = {"name": "spring_sale", "language": "en_US", "params": ["{{name}}"]}


def numbers(n: int, offset: int) -> list[str]:
    return [f"+49151{10_000_000 + offset + i:08d}" for i in range(n)]


def window_stats(times: list[float], cap: float | None) -> dict[str, Any]:
    """Rate over the run, the fullest sliding one-second window, and per-second counts."""
    ts = sorted(times)
    if len(ts) < 2:
        return {"sends": len(ts)}
    span = ts[-1] - ts[0]
    rate = (len(ts) - 1) / span if span > 0 else float("inf")
    fullest, j = 0, 0
    for i, t in enumerate(ts):
        while ts[j] <= t - 1.0:
            j += 1
        fullest = max(fullest, i - j + 1)
    per_second: dict[int, int] = {}
    for t in ts:
        per_second[int(t - ts[0])] = per_second.get(int(t - ts[0]), 0) + 1
    whole = [per_second.get(s, 0) for s in range(1, int(span))]  # full seconds only
    out: dict[str, Any] = {
        "sends": len(ts),
        "seconds": round(span, 2),
        "rate": round(rate, 2),
        "max_in_any_1s_window": fullest,
        "median_per_second": statistics.median(whole) if whole else None,
    }
    if cap and whole:
        # Where a capped run loses its rate: full seconds well under the cap, and what they cost.
        low = [
            (s, per_second.get(s, 0))
            for s in range(1, int(span))
            if per_second.get(s, 0) < 0.9 * cap
        ]
        out["seconds_under_90pct_of_cap"] = len(low)
        out["sends_short_in_those_seconds"] = round(sum(cap - n for _s, n in low))
        out["first_low_seconds"] = low[:20]
    if cap:
        out["deviation_pct"] = round((rate - cap) / cap * 100, 2)
    return out


class Sender:
    """The delivery worker in a process of its own: `tidings worker`, `TIDINGS_WORKERS=delivery`,
    on the bench's database and secret key."""

    def __init__(self, settings: Settings, log: Path, *, queue_first: bool) -> None:
        self.queue_first = queue_first
        self.log = log
        self.env = {
            **os.environ,
            "PYTHONPATH": ROOT,
            "TIDINGS_DATABASE_URL": settings.database_url,
            "TIDINGS_DATA_DIR": str(settings.data_dir / "sender"),
            "TIDINGS_SECRET_KEY": settings.secret_key,
            "TIDINGS_PUBLIC_URL": settings.public_url,
            "TIDINGS_SANDBOX": "0",
            "TIDINGS_LOG_LEVEL": "warning",
            "TIDINGS_WORKERS": "delivery",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.proc is None:
            argv = [str(Path(sys.executable).parent / "tidings"), "worker"]
            with self.log.open("ab") as out:
                self.proc = subprocess.Popen(
                    argv, env=self.env, stdout=out, stderr=subprocess.STDOUT
                )

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid) if self.proc is not None else 0.0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


class Bench:
    def __init__(
        self,
        api: httpx.AsyncClient,
        sim: httpx.AsyncClient,
        public: str,
        sender: Sender | None = None,
    ) -> None:
        self.api, self.sim, self.public = api, sim, public
        self.sender = sender
        self.offset = 0

    async def channel(self, tier: int, pnid: str = PNID) -> int:
        resp = await self.api.post(
            "/api/v1/channels",
            json={
                "kind": "whatsapp",
                "name": f"WhatsApp tier {tier} #{self.offset}",
                "config": {
                    "phone_number_id": pnid,
                    "access_token": TOKEN,
                    "app_secret": APP_SECRET,
                    "verify_token": "bench-verify",
                    "api_base_url": str(self.sim.base_url).rstrip("/"),
                    "messages_per_second": tier,
                },
            },
        )
        resp.raise_for_status()
        channel_id = int(resp.json()["id"])
        reg = await self.sim.put(
            f"/_sim/accounts/{pnid}",
            json={
                "access_token": TOKEN,
                "app_secret": APP_SECRET,
                "verify_token": "bench-verify",
                "webhook_url": f"{self.public}/webhooks/whatsapp/{channel_id}",
            },
        )
        reg.raise_for_status()
        return channel_id

    async def prepare(self, n: int, channel_ids: list[int], cap: float | None) -> int:
        """A campaign of n new recipients (a CSV upload), not launched. Returns its id."""
        self.offset += n
        name = f"bench {time.time_ns()}"
        c = await self.api.post(
            "/api/v1/campaigns",
            json={
                "name": name,
                "content": {"template": TEMPLATE},
                "channel_ids": channel_ids,
                "rate_per_second": cap,
            },
        )
        c.raise_for_status()
        cid = c.json()["id"]
        body = "phone,name\n" + "".join(f"{p},Customer {p[-4:]}\n" for p in numbers(n, self.offset))
        up = await self.api.post(
            f"/api/v1/campaigns/{cid}/audience/csv",
            content=body.encode(),
            headers={"Content-Type": "text/csv"},
            timeout=600,
        )
        up.raise_for_status()
        assert up.json()["added"] == n, up.json()
        return int(cid)

    async def counts(self, cid: int) -> dict[str, int]:
        counts: dict[str, int] = (await self.api.get(f"/api/v1/campaigns/{cid}")).json()["counts"]
        return counts

    async def campaign(self, n: int, channel_ids: list[int], cap: float | None) -> dict[str, Any]:
        cid = await self.prepare(n, channel_ids, cap)
        await self.sim.post("/bench/reset")
        sender = self.sender
        if sender is not None and not sender.queue_first:
            sender.start()
        started = time.time()
        cpu = time.process_time()  # this process: web, workers and the progress polling
        (await self.api.post(f"/api/v1/campaigns/{cid}/launch", timeout=600)).raise_for_status()
        if sender is not None and sender.queue_first:
            while (await self.counts(cid))["pending"]:  # noqa: ASYNC110 (an API poll)
                await asyncio.sleep(0.5)
            sender.start()
        sender_cpu = sender.cpu() if sender is not None else 0.0
        while True:
            await asyncio.sleep(1.0)
            counts = await self.counts(cid)
            left = counts["pending"] + counts["queued"]
            print(f"    {counts['total'] - left}/{n} sent", end="\r", file=sys.stderr)
            if left == 0:
                break
        print(file=sys.stderr)
        got = await self.sim.get("/bench/times")
        got.raise_for_status()
        data = got.json()
        stats = window_stats(data["times"], cap)
        stats["refused_by_simulator"] = data["refused"]
        # Each number's own rate and fullest second (its tier holds per number).
        stats["by_number"] = {
            pnid: {
                k: v
                for k, v in window_stats(times, None).items()
                if k in ("sends", "rate", "max_in_any_1s_window")
            }
            for pnid, times in sorted(data["by_number"].items())
        }
        stats["launch_to_done_s"] = round(time.time() - started, 2)
        stats["tidings_cpu_s"] = round(time.process_time() - cpu, 2)
        stats["tidings_cpu_ms_per_send"] = round((time.process_time() - cpu) / max(1, n) * 1000, 3)
        if sender is not None:
            used = sender.cpu() - sender_cpu
            stats["delivery_process_cpu_s"] = round(used, 2)
            stats["delivery_process_cpu_ms_per_send"] = round(used / max(1, n) * 1000, 3)
            if sender.queue_first:
                sender.stop()
        stats["failed"] = counts["failed"]
        stats["skipped"] = counts["skipped"]
        return stats


async def raw_rate(sim_url: str, n: int, concurrency: int = 32) -> float:
    """The simulator alone: n template sends from a plain loop on the HTTP client Tidings uses
    (`outbound_client` and `post`, as the adapter), `concurrency` at once: what the send path could do
    if Tidings cost nothing."""
    payload = {
        "messaging_product": "whatsapp",
        "to": "4915110000000",
        "type": "template",
        "template": {"name": TEMPLATE["name"], "language": {"code": "en_US"}},
    }
    queue = iter(range(n))
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with outbound_client() as client:

        async def worker() -> None:
            for i in queue:
                body = orjson.dumps({**payload, "to": f"4915110{i:06d}"})
                # The call the WhatsApp adapter makes per message.
                r = await post(
                    client, f"{sim_url}/v25.0/{PNID}/messages", content=body, headers=headers
                )
                r.raise_for_status()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - t0)


@dataclass
class InProcess:
    """Tidings served from this process, as `tidings serve` would, with a bench owner."""

    settings: Settings
    runtime: Runtime
    owner: dict[str, Any]

    def api(self, timeout: float) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.settings.public_url,
            headers={"Authorization": f"Bearer {self.owner['api_token']}"},
            timeout=timeout,
        )


@asynccontextmanager
async def tidings_in_process(
    work: Path, url: str, *, run_workers: bool, workers: frozenset[str] | None = None
) -> AsyncIterator[InProcess]:
    port = free_port()
    settings = load_settings(
        database_url=url,
        data_dir=work / "data",
        redis_url=None,
        secret_key="bench-secret-key-" + "z" * 32,
        public_url=f"http://127.0.0.1:{port}",
        sandbox=False,
        host="127.0.0.1",
        port=port,
        run_workers=run_workers,
        log_level="warning",
        workers=workers,
    )
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.05)
    try:
        owner = await bootstrap(app.state.runtime, "bench@example.com", "bench password 1", "Bench")
        yield InProcess(settings, app.state.runtime, owner)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 60)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    facts = machine_facts()
    work, url = args.work, args.database_url
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    results: dict[str, Any] = {"machine": facts, "database": url.split(":")[0]}
    env = {**os.environ, "PYTHONPATH": ROOT}
    # With a sending process of its own, this one runs every other worker.
    workers = (
        frozenset(name for name in [*WORKERS, SESSIONS] if name != "delivery")
        if args.delivery_process
        else None
    )
    results["delivery_process"] = args.delivery_process
    results["queue_first"] = args.queue_first
    if args.queue_first:
        fanout.MAX_OUTSTANDING = max(args.n_capped, args.n_uncapped)  # queue everyone first
    async with tidings_in_process(work, url, run_workers=True, workers=workers) as tidings:
        for label, throughput, tier, cap, n, numbers_used in (
            ("capped", 80.0, 80, 80.0, args.n_capped, 1),
            ("uncapped", 1_000_000.0, 1000, None, args.n_uncapped, args.numbers),
        ):
            if args.only and label != args.only:
                continue
            argv = [sys.executable, "-m", "bench.campaigns.sim", str(sim_port), str(throughput)]
            with child(argv, env=env, log=work / f"sim-{label}.log"):
                await asyncio.to_thread(wait_http, f"{sim_url}/bench/times")
                async with (
                    tidings.api(timeout=60) as api,
                    httpx.AsyncClient(base_url=sim_url, timeout=60) as sim,
                ):
                    sender = (
                        Sender(
                            tidings.settings,
                            work / f"sender-{label}.log",
                            queue_first=args.queue_first,
                        )
                        if args.delivery_process
                        else None
                    )
                    bench = Bench(api, sim, tidings.settings.public_url, sender)
                    channel_ids = [
                        await bench.channel(tier, str(int(PNID) + i)) for i in range(numbers_used)
                    ]
                    runs = []
                    baselines = []
                    for i in range(args.repeat):
                        print(f"{label} run {i + 1}/{args.repeat}: {n} recipients", file=sys.stderr)
                        runs.append(await bench.campaign(n, channel_ids, cap))
                        if cap is None:
                            baselines.append(await raw_rate(sim_url, min(n, 5000)))
                    entry: dict[str, Any] = {
                        "n": n,
                        "cap": cap,
                        "tier": tier,
                        "numbers": numbers_used,
                        "runs": runs,
                    }
                    entry["median_rate"] = statistics.median(r["rate"] for r in runs)
                    entry["max_in_any_1s_window"] = max(r["max_in_any_1s_window"] for r in runs)
                    if cap:
                        entry["median_deviation_pct"] = statistics.median(
                            r["deviation_pct"] for r in runs
                        )
                    if baselines:
                        entry["baseline_client_rps"] = [round(b, 1) for b in baselines]
                        entry["median_baseline_rps"] = round(statistics.median(baselines), 1)
                        entry["ratio"] = round(
                            entry["median_rate"] / entry["median_baseline_rps"], 3
                        )
                    if sender is not None:
                        sender.stop()
                        entry["median_delivery_process_cpu_ms_per_send"] = statistics.median(
                            r["delivery_process_cpu_ms_per_send"] for r in runs
                        )
                    results[label] = entry
    results["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-capped", type=int, default=2400, help="recipients at cap 80/s")
    parser.add_argument("--n-uncapped", type=int, default=5000, help="recipients, no cap")
    parser.add_argument("--full", action="store_true", help="100,000 recipients each")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("capped", "uncapped"), default=None)
    parser.add_argument(
        "--numbers",
        type=int,
        default=2,
        help="uncapped: WhatsApp numbers (channels at 1,000/s each) sharing the campaign",
    )
    parser.add_argument("--database-url", default=None, help="an empty, unmigrated database")
    parser.add_argument("--out", type=Path, default=Path("bench/out/campaigns.json"))
    parser.add_argument(
        "--delivery-process",
        action="store_true",
        help="send from a `tidings worker` running only the delivery worker",
    )
    parser.add_argument(
        "--queue-first",
        action="store_true",
        help="with --delivery-process: queue the whole campaign before that process starts",
    )
    args = parser.parse_args()
    if args.queue_first and not args.delivery_process:
        parser.error("--queue-first needs --delivery-process")
    if args.full:
        args.n_capped = args.n_uncapped = 100_000
    args.work = Path(tempfile.mkdtemp(prefix="bench-campaigns-"))
    args.database_url = args.database_url or f"sqlite+aiosqlite:///{args.work / 'tidings.db'}"
    migrate(args.database_url)  # alembic runs its own event loop: before ours
    # As `tidings serve` runs: uvloop, and the collector tuned after imports.
    tune_gc()
    results = uvloop.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(
        f"load average before: {results['machine']['load_before']}, after: {results['load_after']}"
    )
    if "capped" in results:
        cap = results["capped"]
        print(
            f"(a) cap 80/s, N={cap['n']}: median rate {cap['median_rate']:.2f}/s "
            f"(median deviation {cap['median_deviation_pct']:+.2f} %, target within 2 %), "
            f"fullest 1-s window {cap['max_in_any_1s_window']} (target <= 80)"
        )
    if "uncapped" in results:
        unc = results["uncapped"]
        print(
            f"(b) uncapped, N={unc['n']}, {unc['numbers']} number(s) at 1,000/s: "
            f"median {unc['median_rate']:.1f} sends/s "
            + (
                "(target >= 1,500 from one worker process); "
                if args.queue_first
                else "(the target, >= 1,500 from one worker process, is measured with "
                "--delivery-process --queue-first); "
            )
            + "baseline: the same HTTP client alone -> simulator "
            f"{unc['median_baseline_rps']:.1f} req/s; ratio {unc['ratio']:.3f}"
        )
        if "median_delivery_process_cpu_ms_per_send" in unc:
            print(
                "    the sending process (delivery worker alone"
                + (", campaign queued first" if args.queue_first else "")
                + f"): {unc['median_delivery_process_cpu_ms_per_send']:.3f} ms CPU per send"
            )
    print(f"full results: {args.out}")


if __name__ == "__main__":
    main()
