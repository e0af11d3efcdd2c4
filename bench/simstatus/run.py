"""Status webhooks from the WhatsApp simulator (issue 14, item 6): can one simulator process
deliver a campaign's receipts (target 3,000 statuses/s) without giving any up?

The simulator runs in this process and accepts `N / 3` sends through its own Graph endpoint
(called as ASGI, 32 concurrent senders, statuses sent/delivered/read, `status_delay` 0); it
posts the status webhooks to a bare Starlette receiver in a child process that answers 200
and counts them. Modes, each run `--runs` times (figures are medians):

- `baseline`: the same receiver hit by a plain loop of POSTs from this process (64 concurrent
  loops of one pre-signed one-status body, over the client stack the simulator uses): what
  one process can post at all;
- `sim`: the simulator, one status per POST (the default);
- `sim-batch`: the simulator with `status_batch` (default 50) and `status_batch_ms` (default 20).

Reported per run: statuses/s delivered (receiver's count ÷ time from the first send until every
status was delivered or given up), POSTs/s, statuses given up, the most statuses the simulator
had pending, and the ratio to the baseline of the same run. Loopback only; bounded by `-n` and
by `--timeout` per run.

    python -m bench.simstatus.run                 # -n 30000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import child, free_port, machine_facts, wait_http
from tidings.httpclient import outbound_client, post
from tidings.simulators.whatsapp import AccountIn, Knobs, WhatsAppSimulator

PNID = "106540352242922"
# Made-up credentials shared with nobody.
TOKEN = "EAAG-bench-token"  # noqa: S105
SECRET = "bench-app-secret"  # noqa: S105


async def asgi_post(app: Any, path: str, body: bytes) -> int:
    """One POST straight into an ASGI app (no client library in the way)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"sim"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {TOKEN}".encode()),
        ],
        "server": ("sim", 80),
        "client": ("127.0.0.1", 1),
    }
    done = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def receiver_counts(client: httpx.AsyncClient, base: str, reset: bool = False) -> Any:
    resp = await (client.post if reset else client.get)(f"{base}/count")
    return resp.json()


async def run_sim(base: str, n: int, batch: int, batch_ms: float, limit_s: float) -> dict[str, Any]:
    sends = n // 3
    sim = WhatsAppSimulator(
        knobs=Knobs(
            status_delay=0.0,
            throughput_per_second=1e9,
            pair_rate_limit=False,
            enforce_window=False,
            history_limit=n + 10,
            status_batch=batch,
            status_batch_ms=batch_ms,
        )
    )
    await sim.register_account(
        PNID,
        AccountIn(
            access_token=TOKEN,
            app_secret=SECRET,
            verify_token="vt",  # noqa: S106
            webhook_url=f"{base}/hook",
        ),
    )
    peak = 0
    refused = 0
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, sim._status_backlog)
            await asyncio.sleep(0.02)

    async def sender(offset: int) -> None:
        nonlocal refused
        for i in range(offset, sends, 32):
            body = json.dumps(
                {
                    "messaging_product": "whatsapp",
                    "to": f"1555{i:07d}",
                    "type": "text",
                    "text": {"body": f"offer {i}"},
                }
            ).encode()
            if await asgi_post(sim.app, f"/v25.0/{PNID}/messages", body) != 200:
                refused += 1

    async with httpx.AsyncClient() as client:
        await receiver_counts(client, base, reset=True)
        sampler = asyncio.create_task(sample())
        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(sender(i) for i in range(32))), limit_s)
        accepted_s = time.perf_counter() - start
        counts = await sim.flush(max(1.0, limit_s - accepted_s))
        elapsed = time.perf_counter() - start
        sampling = False
        await sampler
        got = await receiver_counts(client, base)
    given_up = sum(len(d.refs) for d in sim.deliveries if d.state == "given_up")
    await sim.aclose()
    return {
        "statuses": got["statuses"],
        "posts": got["posts"],
        "seconds": elapsed,
        "statuses_per_s": got["statuses"] / elapsed,
        "posts_per_s": got["posts"] / elapsed,
        "given_up": given_up,
        "pending_at_end": counts["pending"],
        "peak_pending": peak,
        "refused_sends": refused,
        "expected": sends * 3,
    }


async def run_baseline(base: str, n: int, limit_s: float) -> dict[str, Any]:
    status = {
        "id": "wamid.HBgLMTU1NTAwMDAwMDEVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA",
        "status": "delivered",
        "timestamp": str(int(time.time())),
        "recipient_id": "15550000001",
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
        "statuses": [status],
    }
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }
    body = json.dumps(payload, separators=(",", ":")).encode()
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={sig}"}
    # The simulator's own client stack (httpx's API on aiohttp's pool, the direct `post`).
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    failed = 0
    async with outbound_client(httpx.Timeout(10.0), limits=limits) as client:
        await receiver_counts(client, base, reset=True)

        async def loop(offset: int) -> None:
            nonlocal failed
            for _ in range(offset, n, 64):
                try:
                    resp = await post(client, f"{base}/hook", content=body, headers=headers)
                    failed += resp.status_code != 200
                except httpx.HTTPError:
                    failed += 1

        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(loop(i) for i in range(64))), limit_s)
        elapsed = time.perf_counter() - start
        got = await receiver_counts(client, base)
    return {
        "statuses": got["statuses"],
        "posts": got["posts"],
        "seconds": elapsed,
        "statuses_per_s": got["statuses"] / elapsed,
        "posts_per_s": got["posts"] / elapsed,
        "given_up": failed,
        "pending_at_end": 0,
        "peak_pending": 0,
        "refused_sends": 0,
        "expected": n,
    }


async def main_async(args: argparse.Namespace, base: str) -> list[dict[str, Any]]:
    rows = []
    for run in range(1, args.runs + 1):
        base_row = await run_baseline(base, args.n, args.timeout)
        for mode, batch, ms in (
            ("baseline", 0, 0.0),
            ("sim", 1, 0.0),
            ("sim-batch", args.batch, args.batch_ms),
        ):
            row = (
                base_row
                if mode == "baseline"
                else await run_sim(base, args.n, batch, ms, args.timeout)
            )
            row = {**row, "run": run, "mode": mode}
            row["ratio"] = row["statuses_per_s"] / base_row["statuses_per_s"]
            rows.append(row)
            print(
                f"run {run} {mode:9s} {row['statuses_per_s']:8,.0f} statuses/s "
                f"{row['posts_per_s']:7,.0f} POSTs/s  ratio {row['ratio']:.2f}  "
                f"delivered {row['statuses']:,}/{row['expected']:,}  given up {row['given_up']}  "
                f"pending at end {row['pending_at_end']}  peak pending {row['peak_pending']:,}  "
                f"{row['seconds']:.1f} s",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=30_000, help="status webhooks per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--batch-ms", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per run, at most")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args()
    print(json.dumps(machine_facts()))
    port = free_port()
    log = Path(tempfile.gettempdir()) / f"simstatus-receiver-{os.getpid()}.log"
    argv = [sys.executable, "-m", "bench.simstatus.receiver", str(port)]
    with child(argv, env=os.environ, log=log):
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/count")
        rows = asyncio.run(main_async(args, base))
    print("\nmedians of", args.runs, "runs:")
    for mode in ("baseline", "sim", "sim-batch"):
        mine = [r for r in rows if r["mode"] == mode]
        print(
            f"  {mode:9s} {statistics.median(r['statuses_per_s'] for r in mine):8,.0f} statuses/s "
            f"{statistics.median(r['posts_per_s'] for r in mine):7,.0f} POSTs/s  "
            f"ratio {statistics.median(r['ratio'] for r in mine):.2f}  "
            f"given up (sum) {sum(r['given_up'] for r in mine)}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
