"""Broadcast storm (issue 14, item 7): a campaign at 1,000 messages/s on ONE WhatsApp number with
statuses on, a customer writing on the same number every 0.5 s, an agent watching by SSE.

    python -m bench.storm                               # SQLite, one `tidings serve`; 20,000 x 3
    python -m bench.storm --quick                       # 3,000 recipients, one run
    python -m bench.storm --store postgres              # 1 web + 2 `tidings worker` + Redis
        (--database-url / --redis-url, default $TIDINGS_TEST_PG_URL / $TIDINGS_TEST_REDIS_URL;
         a database `bench_storm` is created afresh on that server for each run)

Every run starts from nothing: a fresh database, a fresh simulator, new processes.

- The provider is the product's own WhatsApp simulator (`tidings.simulators.whatsapp`) in a
  process of its own (`bench.storm.sim`), its per-number throughput set to the channel's tier
  (`--rate`), statuses sent/delivered/read on (one status per webhook POST unless
  `--status-batch`), signed, retried like Meta. Its webhook sender times every POST: that is
  the acknowledgement latency (what Meta sees), read from `GET /_sim/stats`.
- Tidings: SQLite, one `tidings serve` with its in-process workers (the embedded default); or
  PostgreSQL + Redis, one `tidings serve` (`TIDINGS_RUN_WORKERS=0`) and `--workers` (2)
  `tidings worker` processes in the documented layout (docs/operations.md, "Sizing the lanes"):
  worker 0 `TIDINGS_WORKERS=inbound` (the inbound lanes alone), the others `background` (every
  other loop); `--all-loop-workers` runs every loop in every worker instead.
- A WhatsApp channel at `messages_per_second` = `--rate`; a campaign of `--recipients` (CSV
  upload, one template) launched on it.
- The customer: every `--interval` (0.5) s, open-loop (scheduled times, a late one counts
  against us), one of 4 customers sends a text through the simulator's `/_sim/inbound`, which
  posts a real signed webhook to Tidings, the provider's way. The agent is an SSE client on
  `/api/v1/events`; customer → agent latency is scheduled send → the agent's `message.created`.
  Same-run baseline: 10 customer messages before the campaign (no load), and the ratio.
- Campaign end: every recipient sent (none pending or queued). The status lag at that moment
  is Tidings' own gauge (`GET /api/v1/inbound/lag`). Drain: from the campaign's end until the
  simulator has no status left to post and neither lane has a pending event.
- Rates during the run (launch → campaign end): status events applied/s and customer events
  processed/s, from the `inbound_event` rows per lane and state (sampled each second).
- At the end, the exactly-once audit (`bench/storm/audit.py`) against the database.
- `--profile DIR`: py-spy (a dev dependency) records every Tidings process from the launch for
  `--profile-seconds`, idle samples included, into DIR (raw collapsed stacks, one file per
  process and run; `python -m bench.storm.profile DIR/*.txt` sums them by stage).

Bounded: `--campaign-timeout` and `--drain-timeout` per run; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.common import child, free_port, machine_facts, wait_http
from bench.sse.run import Client, pct
from bench.storm.audit import Audit, audit

PNID = "100000000000777"
TOKEN = "storm-access-token"  # noqa: S105 (the simulator's made-up credential)
APP_SECRET = "storm-app-secret"  # noqa: S105
SECRET_KEY = "storm-bench-secret-key-" + "s" * 32  # one key for every process of a run
TEMPLATE = {"name": "spring_sale", "language": "en_US", "params": ["{{name}}"]}
CUSTOMERS = [f"4930{5550000 + i:07d}" for i in range(4)]
BENCH_DB = "bench_storm"
TARGET_P99_MS = 1000.0
TARGET_LAG_S = 5.0


def recipients_csv(n: int) -> bytes:
    rows = "".join(f"+49151{20_000_000 + i:08d},Customer {i}\n" for i in range(n))
    return ("phone,name\n" + rows).encode()


def fresh_postgres(url: str) -> str:
    """Create `bench_storm` on the server of `url` (dropping an old one); return its URL."""
    import asyncpg  # type: ignore[import-untyped]

    plain = url.replace("postgresql+asyncpg://", "postgresql://")
    base = plain.rpartition("/")[0]

    async def create() -> None:
        conn = await asyncpg.connect(f"{base}/postgres")
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {BENCH_DB}")
        finally:
            await conn.close()

    asyncio.run(create())
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{BENCH_DB}"


async def retrying(call: Any, *args: Any, **kwargs: Any) -> httpx.Response:
    """A request tried again on a transport error (a kept-alive connection the server closed
    just as it was reused); only for idempotent ones."""
    for attempt in range(3):
        try:
            response: httpx.Response = await call(*args, **kwargs)
            return response
        except httpx.TransportError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


class Storm:
    """One run's clients: Tidings' API, the simulator's control API, the database (reads)."""

    def __init__(
        self, args: argparse.Namespace, port: int, sim_port: int, token: str, db_url: str
    ) -> None:
        self.args = args
        self.port = port
        self.sim_url = f"http://127.0.0.1:{sim_port}"
        self.token = token
        self.api = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )
        self.sim = httpx.AsyncClient(
            base_url=self.sim_url,
            timeout=60,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        self.db: AsyncEngine = create_async_engine(db_url, pool_size=2, max_overflow=0)
        self.profiled: dict[str, int] = {}  # process name -> pid, for --profile
        self.run_index = 0
        self.channel_id = 0
        self.campaign_id = 0

    async def aclose(self) -> None:
        await self.api.aclose()
        await self.sim.aclose()
        await self.db.dispose()

    # ------------------------------------------------------------------ set-up

    async def setup(self) -> None:
        args = self.args
        resp = await self.sim.post(
            "/_sim/config",
            json={
                "throughput_per_second": args.rate,
                "pair_rate_limit": False,
                "history_limit": 1000,
                "status_batch": args.status_batch,
                "status_batch_ms": args.status_batch_ms,
            },
        )
        resp.raise_for_status()
        resp = await self.api.post(
            "/api/v1/channels",
            json={
                "kind": "whatsapp",
                "name": "WhatsApp (storm)",
                "config": {
                    "phone_number_id": PNID,
                    "access_token": TOKEN,
                    "app_secret": APP_SECRET,
                    "verify_token": "storm-verify",
                    "api_base_url": self.sim_url,
                    "messages_per_second": int(args.rate),
                },
            },
        )
        resp.raise_for_status()
        self.channel_id = int(resp.json()["id"])
        reg = await self.sim.put(
            f"/_sim/accounts/{PNID}",
            json={
                "access_token": TOKEN,
                "app_secret": APP_SECRET,
                "verify_token": "storm-verify",
                "webhook_url": f"http://127.0.0.1:{self.port}/webhooks/whatsapp/{self.channel_id}",
            },
        )
        reg.raise_for_status()
        c = await self.api.post(
            "/api/v1/campaigns",
            json={
                "name": f"storm {time.time_ns()}",
                "content": {"template": TEMPLATE},
                "channel_ids": [self.channel_id],
                "rate_per_second": None,
            },
        )
        c.raise_for_status()
        self.campaign_id = int(c.json()["id"])
        up = await self.api.post(
            f"/api/v1/campaigns/{self.campaign_id}/audience/csv",
            content=recipients_csv(args.recipients),
            headers={"Content-Type": "text/csv"},
            timeout=900,
        )
        up.raise_for_status()
        if up.json().get("added") != args.recipients:
            raise RuntimeError(f"audience upload: {up.json()}")

    # ------------------------------------------------------------------ readings

    async def counts(self) -> dict[str, int]:
        resp = await retrying(self.api.get, f"/api/v1/campaigns/{self.campaign_id}")
        resp.raise_for_status()
        counts: dict[str, int] = resp.json()["counts"]
        return counts

    async def lag(self) -> dict[str, Any]:
        resp = await retrying(self.api.get, "/api/v1/inbound/lag")
        resp.raise_for_status()
        lag: dict[str, Any] = resp.json()
        return lag

    async def sim_stats(self, reset: bool = False) -> dict[str, Any]:
        resp = await retrying(self.sim.delete if reset else self.sim.get, "/_sim/stats")
        resp.raise_for_status()
        stats: dict[str, Any] = resp.json()
        return stats

    async def lanes(self) -> dict[str, int]:
        """inbound_event rows per `lane:state`."""
        async with self.db.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT lane, state, count(*) FROM inbound_event GROUP BY lane, state")
                )
            ).all()
        return {f"{lane}:{state}": int(n) for lane, state, n in rows}

    # ------------------------------------------------------------------ the customer

    async def inject(self, customer: str, marker: str) -> tuple[int, float]:
        """One customer message through the simulator; (webhook status, inject round trip s).
        The message id is fixed, so an inject tried again is the same message (Tidings keeps
        one), as a provider's retry would be."""
        started = time.perf_counter()
        body = {
            "phone_number_id": PNID,
            "from": customer,
            "name": "Storm",
            "text": marker,
            "id": f"wamid.storm-{marker}",
        }
        try:
            resp = await retrying(self.sim.post, "/_sim/inbound", json=body)
            status = int(resp.json().get("status") or 0) if resp.status_code == 200 else 0
        except httpx.HTTPError:
            status = 0
        return status, time.perf_counter() - started

    async def customers(
        self,
        agent: Client,
        tag: str,
        *,
        count: int | None = None,
        stop: asyncio.Event | None = None,
    ) -> tuple[dict[str, float], list[asyncio.Task[tuple[int, float]]]]:
        """Customer messages every `--interval` s, open-loop, until `count` or `stop`."""
        scheduled: dict[str, float] = {}
        tasks: list[asyncio.Task[tuple[int, float]]] = []
        start = time.perf_counter() + 0.05
        i = 0
        while (count is None or i < count) and not (stop is not None and stop.is_set()):
            due = start + i * self.args.interval
            delay = due - time.perf_counter()
            if delay > 0:
                if stop is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    if stop.is_set():
                        break
                else:
                    await asyncio.sleep(delay)
            marker = f"{tag}-{i}"
            scheduled[marker] = due
            tasks.append(asyncio.create_task(self.inject(CUSTOMERS[i % len(CUSTOMERS)], marker)))
            i += 1
        return scheduled, tasks


def latency_figures(scheduled: dict[str, float], agent: Client) -> dict[str, float]:
    """Percentiles over every message sent: one the agent never saw counts as infinitely
    late (printed `inf`), so a backlog that outlasts the run cannot flatter the figures."""
    lat = [(agent.seen[m] - at) * 1000 for m, at in scheduled.items() if m in agent.seen]
    seen = len(lat)
    lat += [float("inf")] * (len(scheduled) - seen)
    return {
        "sent": len(scheduled),
        "seen": seen,
        "p50": pct(lat, 0.5),
        "p95": pct(lat, 0.95),
        "p99": pct(lat, 0.99),
        "max": max(lat) if lat else float("nan"),
    }


async def wait_seen(agent: Client, markers: set[str], seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while not markers <= agent.seen.keys() and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def run_storm(storm: Storm) -> dict[str, Any]:
    args = storm.args
    agent = Client(storm.port, storm.token)
    reader = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.ready.wait(), 30)
    out: dict[str, Any] = {}
    spies: list[subprocess.Popen[bytes]] = []
    try:
        # Warm-up: each customer's contact and conversation exist, as in a steady state.
        warm, tasks = await storm.customers(agent, "warm", count=len(CUSTOMERS))
        await asyncio.gather(*tasks)
        await wait_seen(agent, set(warm), 60)
        base, tasks = await storm.customers(agent, "base", count=10)
        await asyncio.gather(*tasks)
        await wait_seen(agent, set(base), 60)
        out["baseline"] = latency_figures(base, agent)

        await storm.sim_stats(reset=True)
        timeline: list[dict[str, Any]] = []
        lanes0 = await storm.lanes()
        spies = start_profiles(args, storm.profiled, storm.run_index)
        t0 = time.perf_counter()
        launch = await storm.api.post(f"/api/v1/campaigns/{storm.campaign_id}/launch")
        launch.raise_for_status()
        stop = asyncio.Event()
        customer_job = asyncio.create_task(storm.customers(agent, "storm", stop=stop))
        ended: float | None = None
        lag_at_end: dict[str, Any] = {}
        lanes_end: dict[str, int] = {}
        stats_end: dict[str, Any] = {}
        counts: dict[str, int] = {}
        while time.perf_counter() - t0 < args.campaign_timeout:
            await asyncio.sleep(1.0)
            counts = await storm.counts()
            left = counts["pending"] + counts["queued"]
            if left == 0:
                ended = time.perf_counter()
                stop.set()
                lag_at_end = await storm.lag()
                lanes_end = await storm.lanes()
                stats_end = await storm.sim_stats()
            stats = stats_end or await storm.sim_stats()
            lanes = lanes_end or await storm.lanes()
            lag = lag_at_end or await storm.lag()
            timeline.append(
                {
                    "t": round(time.perf_counter() - t0, 2),
                    "sent": counts["total"] - left,
                    "status_acks": stats["webhooks"].get("status", {}).get("ok", 0),
                    "sim_status_backlog": stats["status_backlog"],
                    "lanes": lanes,
                    "lag": lag,
                }
            )
            print(
                f"    t={timeline[-1]['t']:6.1f}s sent {timeline[-1]['sent']:>6}/"
                f"{counts['total']}  status acks {timeline[-1]['status_acks']:>7}  "
                f"status lag {(lag.get('status') or {}).get('seconds', 0):6.1f}s "
                f"pending {(lag.get('status') or {}).get('pending', 0):>6}  "
                f"customer lag {lag['customer']['seconds']:5.1f}s",
                file=sys.stderr,
                flush=True,
            )
            if ended is not None:
                break
        stop.set()
        scheduled, inject_tasks = await customer_job
        campaign_s = (ended or time.perf_counter()) - t0
        out["campaign_finished"] = ended is not None
        out["campaign_s"] = round(campaign_s, 2)
        out["sent"] = counts.get("total", 0) - counts.get("pending", 0) - counts.get("queued", 0)
        out["send_rate"] = out["sent"] / campaign_s
        if not lanes_end:
            lanes_end = await storm.lanes()
            stats_end = await storm.sim_stats()
            lag_at_end = await storm.lag()
        status_end = stats_end["webhooks"].get("status", {})
        out["acks_per_s"] = status_end.get("ok", 0) / campaign_s
        out["statuses_acked_per_s"] = status_end.get("items_delivered", 0) / campaign_s
        out["status_lag_at_end_s"] = (lag_at_end.get("status") or {}).get("seconds")
        out["status_pending_at_end"] = (lag_at_end.get("status") or {}).get("pending")
        out["customer_lag_at_end_s"] = lag_at_end["customer"]["seconds"]

        def done(lanes: dict[str, int], lane: str) -> int:
            return lanes.get(f"{lane}:done", 0)

        out["status_applied_per_s"] = (done(lanes_end, "status") - done(lanes0, "status")) / (
            campaign_s
        )
        out["customer_processed_per_s"] = (
            done(lanes_end, "customer") - done(lanes0, "customer")
        ) / campaign_s

        # Drain: the simulator has posted everything and no lane has a pending event.
        drained: float | None = None
        while time.perf_counter() - t0 - campaign_s < args.drain_timeout:
            stats = await storm.sim_stats()
            lanes = await storm.lanes()
            pending = sum(n for key, n in lanes.items() if key.endswith(":pending"))
            if stats["status_backlog"] == 0 and pending == 0:
                drained = time.perf_counter()
                break
            if int(time.perf_counter() * 2) % 10 == 0:  # every 5 s or so
                print(
                    f"    draining: t={time.perf_counter() - t0:6.1f}s simulator backlog "
                    f"{stats['status_backlog']:>6} messages, pending events {pending:>6}",
                    file=sys.stderr,
                    flush=True,
                )
            await asyncio.sleep(0.5)
        out["drained"] = drained is not None
        out["drain_s"] = round((drained or time.perf_counter()) - t0 - campaign_s, 2)
        out["timeline"] = timeline

        injected = await asyncio.gather(*inject_tasks)
        await wait_seen(agent, set(scheduled), 30)
        out["customer"] = latency_figures(scheduled, agent)
        out["stages"] = await stages(storm, scheduled, agent)
        out["customer_inject_non_200"] = sum(1 for status, _ in injected if status != 200)
        out["customer_inject_p99_ms"] = pct([s * 1000 for _, s in injected], 0.99)
        final = await storm.sim_stats()
        out["sim"] = final
        lanes = await storm.lanes()
        out["lanes_at_end"] = lanes
        # Failed events (either lane) are kept and replayable, but nobody sees them meanwhile.
        out["failed_events"] = sum(n for key, n in lanes.items() if key.endswith(":failed"))
        status = final["webhooks"].get("status", {})
        out["ack_p50_ms"] = status.get("latency", {}).get("p50_ms")
        out["ack_p99_ms"] = status.get("latency", {}).get("p99_ms")
        out["non_2xx"] = sum(k.get("non_2xx", 0) for k in final["webhooks"].values())
        out["transport_errors"] = sum(
            k.get("transport_errors", 0) for k in final["webhooks"].values()
        )
        result = await exactly_once(storm, status.get("items_given_up", 0))
        out["audit"] = result.summary()
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        for spy in spies:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(timeout=args.profile_seconds + 30)
    return out


def start_profiles(
    args: argparse.Namespace, pids: dict[str, int], run: int
) -> list[subprocess.Popen[bytes]]:
    """py-spy on each Tidings process for `--profile-seconds` from now (the campaign's launch)."""
    if args.profile is None:
        return []
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        sys.exit("--profile needs py-spy in the venv (scripts/setup installs the dev extras)")
    args.profile.mkdir(parents=True, exist_ok=True)
    spies = []
    for name, pid in pids.items():
        argv = [str(spy), "record", "--pid", str(pid), "--duration", str(args.profile_seconds)]
        argv += ["--rate", "200", "--idle", "--threads", "--format", "raw", "--nonblocking"]
        argv += ["-o", str(args.profile / f"{args.store}-{name}-run{run}.txt")]
        spies.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return spies


WALL = time.time() - time.perf_counter()  # perf_counter -> wall clock (UTC seconds)


def _utc_seconds(value: Any) -> float:
    """A timestamp column as read back by either store: SQLite text (UTC, naive) or datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


async def stages(storm: Storm, scheduled: dict[str, float], agent: Client) -> dict[str, float]:
    """Where a customer's message spent its time during the campaign, from the rows Tidings
    stamps: scheduled → its webhook received (`inbound_event.received_at`: the simulator and
    the request reaching the handler), → its message row created (`message.created_at`, in
    the ingest worker's transaction: the commit of the webhook, the wake-up, the claim), → the
    agent's SSE event (the apply's commit, the publish, the stream). p50/p99 in ms."""
    async with storm.db.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT e.event_key, e.received_at, m.created_at FROM inbound_event e "
                    "JOIN message m ON m.channel_id = e.channel_id "
                    "AND m.provider_message_id = substr(e.event_key, 5) "
                    "WHERE e.channel_id = :ch AND e.event_key LIKE 'msg:wamid.storm-storm-%'"
                ),
                {"ch": storm.channel_id},
            )
        ).all()
    parts: dict[str, list[float]] = {"received": [], "created": [], "seen": []}
    for key, received, created in rows:
        marker = str(key).removeprefix("msg:wamid.storm-")
        if marker not in scheduled or marker not in agent.seen:
            continue
        due, rec, made = scheduled[marker] + WALL, _utc_seconds(received), _utc_seconds(created)
        parts["received"].append((rec - due) * 1000)
        parts["created"].append((made - rec) * 1000)
        parts["seen"].append((agent.seen[marker] + WALL - made) * 1000)
    out: dict[str, float] = {"measured": float(len(parts["seen"]))}
    for name, values in parts.items():
        out[f"{name}_p50"] = pct(values, 0.5)
        out[f"{name}_p99"] = pct(values, 0.99)
    return out


async def exactly_once(storm: Storm, given_up: int) -> Audit:
    resp = await retrying(
        storm.sim.get, "/_sim/conversations", params={"phone_number_id": PNID}, timeout=300
    )
    resp.raise_for_status()
    sim_statuses = {
        m["id"]: [s["status"] for s in m["statuses"]]
        for m in resp.json()
        if m["direction"] == "out"
    }
    ch = {"ch": storm.channel_id, "cid": storm.campaign_id}
    counts_before = await storm.counts()
    async with storm.db.connect() as conn:
        stored = [
            (str(k), str(s))
            for k, s in await conn.execute(
                text(
                    "SELECT event_key, state FROM inbound_event "
                    "WHERE channel_id = :ch AND lane = 'status'"
                ),
                ch,
            )
        ]
        db_messages = {
            str(pmid): str(status)
            for pmid, status in await conn.execute(
                text(
                    "SELECT provider_message_id, status FROM message "
                    "WHERE channel_id = :ch AND direction = 'out'"
                ),
                ch,
            )
        }
        recipients = [
            (str(state), None if status is None else str(status))
            for state, status in await conn.execute(
                text(
                    "SELECT r.state, m.status FROM campaign_recipient r "
                    "LEFT JOIN message m ON m.id = r.message_id WHERE r.campaign_id = :cid"
                ),
                ch,
            )
        ]
    # The campaign's counts are compared with the rows only if they stood still while the
    # rows were read (a run that did not drain is still applying statuses).
    counts_after = await storm.counts()
    return audit(
        sim_statuses,
        stored,
        db_messages,
        recipients,
        counts_after if counts_after == counts_before else None,
        given_up=given_up,
    )


def one_run(args: argparse.Namespace, index: int) -> dict[str, Any]:
    tidings = str(Path(sys.executable).parent / "tidings")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tidings-storm-")))
        if args.store == "postgres":
            db_url = fresh_postgres(args.database_url)
        else:
            db_url = f"sqlite+aiosqlite:///{tmp}/tidings.db"
        port, sim_port = free_port(), free_port()
        env = {
            **os.environ,
            "TIDINGS_DATABASE_URL": db_url,
            "TIDINGS_SECRET_KEY": SECRET_KEY,
            "TIDINGS_PORT": str(port),
            "TIDINGS_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "TIDINGS_SANDBOX": "0",
            "TIDINGS_LOG_LEVEL": "warning",
        }
        if args.store == "postgres":
            env["TIDINGS_REDIS_URL"] = args.redis_url

        def env_for(name: str, **extra: str) -> dict[str, str]:
            (tmp / name).mkdir(exist_ok=True)
            return {**env, "TIDINGS_DATA_DIR": str(tmp / name), **extra}

        sim = stack.enter_context(
            child(
                [sys.executable, "-m", "bench.storm.sim", str(sim_port)],
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
                log=tmp / "sim.log",
            )
        )
        wait_http(f"http://127.0.0.1:{sim_port}/_sim/stats", proc=sim)
        first = env_for("web")
        subprocess.run([tidings, "migrate"], env=first, check=True, capture_output=True)
        boot = json.loads(
            subprocess.run(
                [tidings, "bootstrap", "--email", "storm@x.test", "--password", "pw-pw-pw-pw"],
                env=first,
                check=True,
                capture_output=True,
            ).stdout
        )
        web_env = env_for("web", TIDINGS_RUN_WORKERS="0" if args.store == "postgres" else "1")
        web = stack.enter_context(child([tidings, "serve"], env=web_env, log=tmp / "web.log"))
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=web)
        profiled = {"web": web.pid}
        if args.store == "postgres":
            for i in range(args.workers):
                loops = {}
                if not args.all_loop_workers:
                    # The documented layout (docs/operations.md, "Sizing the lanes"): process 0
                    # runs the inbound lanes alone, the others every other loop.
                    loops["TIDINGS_WORKERS"] = "inbound" if i == 0 else "background"
                worker = stack.enter_context(
                    child(
                        [tidings, "worker"],
                        env=env_for(f"worker{i}", TIDINGS_RUN_WORKERS="1", **loops),
                        log=tmp / f"worker{i}.log",
                    )
                )
                profiled[f"worker{i}"] = worker.pid

        async def go() -> dict[str, Any]:
            storm = Storm(args, port, sim_port, boot["api_token"], db_url)
            storm.profiled, storm.run_index = profiled, index
            try:
                await storm.setup()
                return await run_storm(storm)
            finally:
                await storm.aclose()

        print(f"run {index}: {args.recipients} recipients, {args.store}", file=sys.stderr)
        try:
            return asyncio.run(go())
        finally:
            if args.keep_logs:
                keep = Path(args.keep_logs) / f"run{index}"
                keep.mkdir(parents=True, exist_ok=True)
                for log in tmp.glob("*.log"):
                    (keep / log.name).write_bytes(log.read_bytes())


def verdicts(r: dict[str, Any]) -> list[tuple[str, bool]]:
    return [
        (f"customer → agent p99 ≤ {TARGET_P99_MS:.0f} ms", r["customer"]["p99"] <= TARGET_P99_MS),
        (
            f"status lag at campaign end ≤ {TARGET_LAG_S:.0f} s",
            r["status_lag_at_end_s"] is not None and r["status_lag_at_end_s"] <= TARGET_LAG_S,
        ),
        ("0 non-2xx (and no transport errors)", r["non_2xx"] + r["transport_errors"] == 0),
        ("every status applied exactly once", bool(r["audit"]["ok"])),
    ]


FIGURES = (
    ("send_rate", "campaign sends/s", "{:.0f}"),
    ("campaign_s", "campaign s", "{:.1f}"),
    ("acks_per_s", "status acks/s", "{:.0f}"),
    ("ack_p50_ms", "ack p50 ms", "{:.1f}"),
    ("ack_p99_ms", "ack p99 ms", "{:.1f}"),
    ("customer.p50", "customer→agent p50 ms", "{:.0f}"),
    ("customer.p95", "customer→agent p95 ms", "{:.0f}"),
    ("customer.p99", "customer→agent p99 ms", "{:.0f}"),
    ("customer.max", "customer→agent max ms", "{:.0f}"),
    ("baseline.p99", "baseline (no campaign) p99 ms", "{:.0f}"),
    ("status_lag_at_end_s", "status lag at end s", "{:.1f}"),
    ("status_pending_at_end", "status events pending at end", "{:.0f}"),
    ("drain_s", "drain s", "{:.1f}"),
    ("status_applied_per_s", "status events applied/s", "{:.0f}"),
    ("customer_processed_per_s", "customer events processed/s", "{:.1f}"),
    ("failed_events", "inbound events failed", "{:.0f}"),
    ("non_2xx", "non-2xx", "{:.0f}"),
    ("transport_errors", "transport errors", "{:.0f}"),
)


def figure(r: dict[str, Any], key: str) -> float:
    value: Any = r
    for part in key.split("."):
        value = value[part]
    return float("nan") if value is None else float(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="the number's tier, msg/s")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--quick", action="store_true", help="3,000 recipients, one run")
    parser.add_argument("--interval", type=float, default=0.5, help="s between customer messages")
    parser.add_argument("--workers", type=int, default=2, help="postgres: worker processes")
    parser.add_argument(
        "--all-loop-workers",
        action="store_true",
        help="postgres: every worker runs every loop (default: worker 0 `TIDINGS_WORKERS=inbound`,"
        " the others `background`)",
    )
    parser.add_argument("--database-url", default=os.environ.get("TIDINGS_TEST_PG_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("TIDINGS_TEST_REDIS_URL"))
    parser.add_argument("--status-batch", type=int, default=1, help="statuses per webhook POST")
    parser.add_argument("--status-batch-ms", type=float, default=0.0)
    parser.add_argument("--campaign-timeout", type=float, default=900.0)
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument("--keep-logs", help="copy the processes' logs to this directory")
    parser.add_argument(
        "--profile", type=Path, help="py-spy every Tidings process into this folder (see above)"
    )
    parser.add_argument("--profile-seconds", type=int, default=30)
    args = parser.parse_args(argv)
    if args.quick:
        args.recipients, args.runs = 3000, 1
    if not 1 <= args.recipients <= 200_000 or not 1 <= args.rate <= 5000:
        parser.error("--recipients must be within 1..200,000 and --rate within 1..5,000")
    if args.store == "postgres" and not (args.database_url and args.redis_url):
        parser.error("--store postgres needs --database-url and --redis-url")
    facts = machine_facts()
    runs: list[dict[str, Any]] = []
    for i in range(args.runs):
        runs.append(one_run(args, i + 1))
        if args.json:  # each run as it ends: a session cut short keeps what it measured
            args.json.parent.mkdir(parents=True, exist_ok=True)
            partial = args.json.with_suffix(".partial.json")
            partial.write_text(json.dumps({"machine": facts, "runs": runs}, default=str))
    facts["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    topology = (
        "SQLite, one `tidings serve`"
        if args.store == "sqlite"
        else f"PostgreSQL + Redis, 1 web + {args.workers} worker processes"
        + (
            " (each runs every loop)"
            if args.all_loop_workers
            else " (worker 0 `inbound`, the others `background`)"
        )
    )
    print(
        f"\nBroadcast storm — {topology}; {args.recipients:,} recipients at {args.rate:.0f}/s, "
        f"statuses sent/delivered/read ({args.status_batch} per POST), a customer message "
        f"every {args.interval} s; load average before {facts['load_before']}, "
        f"after {facts['load_after']}"
    )
    header = f"{'figure':32s}" + "".join(f"{'run ' + str(i + 1):>10s}" for i in range(len(runs)))
    print(header + f"{'median':>10s}")
    for key, label, fmt in FIGURES:
        values = [figure(r, key) for r in runs]
        cells = "".join(f"{fmt.format(v):>10s}" for v in values)
        print(f"{label:32s}{cells}{fmt.format(statistics.median(values)):>10s}")
    for i, r in enumerate(runs, 1):
        c = r["customer"]
        print(
            f"run {i}: customer messages seen {c['seen']}/{c['sent']}; campaign "
            f"{'finished' if r['campaign_finished'] else 'DID NOT FINISH'}, "
            f"{'drained' if r['drained'] else 'NOT DRAINED'}; audit: "
            f"{r['audit']['stored']} status events stored, {r['audit']['applied']} applied, "
            f"{r['audit']['expected']} sent by the simulator"
            + ("" if r["audit"]["counts_compared"] else " (campaign counts still moving)")
        )
        st = r.get("stages") or {}
        if st.get("measured"):
            print(
                f"    customer stages p50/p99 ms ({st['measured']:.0f} messages): scheduled → "
                f"webhook received {st['received_p50']:.0f}/{st['received_p99']:.0f}; → message "
                f"row created {st['created_p50']:.0f}/{st['created_p99']:.0f}; → agent's SSE "
                f"{st['seen_p50']:.0f}/{st['seen_p99']:.0f}"
            )
        for problem in r["audit"]["problems"]:
            print(f"    {problem}")
    print("targets (each run):")
    for i, r in enumerate(runs, 1):
        print(
            f"  run {i}: "
            + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in verdicts(r))
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "topology": topology,
                    "args": vars(args) | {"json": str(args.json)},
                    "machine": facts,
                    "runs": runs,
                },
                indent=1,
                default=str,
            )
        )
    print(orjson.dumps({"topology": topology, "machine": facts}).decode())
    return 0
