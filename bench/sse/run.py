"""Live fan-out: one webhook event to N connected SSE clients (agents' browsers).

For each of E events it signs an API-channel webhook, posts it, and times until every connected
client has read the resulting `message.created` event from `/api/v1/events`. It reports the
latency p50/p99 over all (event, client) pairs, the same for a single client as the same-run
baseline, and the server's RSS with the clients connected.

    python -m bench.sse.run --clients 1000 --events 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from bench.common import child, free_port, machine_facts, wait_http
from tidings import signing

SECRET = "bench-sse-secret-0123456789"  # noqa: S105 — the bench channel it creates itself


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Client:
    """A minimal SSE reader on a raw connection (httpx per client would measure httpx)."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.seen: dict[str, float] = {}
        self.ready = asyncio.Event()

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(
            f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {self.token}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        buffer = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            now = time.perf_counter()
            buffer += chunk
            if b": connected" in buffer:
                self.ready.set()
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                if b"event: message.created" in block:
                    for line in block.split(b"\n"):
                        if line.startswith(b"data: "):
                            body = orjson.loads(line[6:]).get("body") or ""
                            self.seen.setdefault(body, now)


async def measure(
    port: int,
    token: str,
    channel_id: int,
    clients: int,
    events: int,
    tag: str,
    pid: int,
    rss: list[float],
) -> tuple[list[float], float]:
    readers = [Client(port, token) for _ in range(clients)]
    tasks = [asyncio.create_task(r.run()) for r in readers]
    await asyncio.wait_for(asyncio.gather(*(r.ready.wait() for r in readers)), 120)
    rss.append(rss_mb(pid))  # with every client connected
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for i in range(events):
            marker = f"{tag}-{i}"
            body = orjson.dumps(
                {
                    "messages": [
                        {
                            "id": marker,
                            "from": {"id": f"u{i % 50}"},
                            "text": marker,
                            "timestamp": int(time.time()),
                        }
                    ]
                }
            )
            started = time.perf_counter()
            resp = await http.post(
                f"/webhooks/api/{channel_id}",
                content=body,
                headers=signing.sign_headers(SECRET, body),
            )
            assert resp.status_code == 200, resp.text
            deadline = time.perf_counter() + 30
            while any(marker not in r.seen for r in readers) and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
            latencies += [(r.seen[marker] - started) * 1000 for r in readers if marker in r.seen]
            await asyncio.sleep(0.2)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return latencies, len(latencies) / (clients * events)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    args = parser.parse_args()
    tidings = str(Path(sys.executable).parent / "tidings")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {
            **os.environ,
            "TIDINGS_DATA_DIR": tmp,
            "TIDINGS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/tidings.db",
            "TIDINGS_PORT": str(port),
            "TIDINGS_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "TIDINGS_SANDBOX": "0",
            "TIDINGS_LOG_LEVEL": "warning",
        }
        subprocess.run([tidings, "migrate"], env=env, check=True, capture_output=True)
        boot = json.loads(
            subprocess.run(
                [tidings, "bootstrap", "--email", "b@x.test", "--password", "pw-pw-pw-pw"],
                env=env,
                check=True,
                capture_output=True,
            ).stdout
        )
        token = boot["api_token"]
        with child([tidings, "serve"], env=env, log=Path(tmp) / "serve.log") as proc:
            wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
            resp = httpx.post(
                f"http://127.0.0.1:{port}/api/v1/channels",
                headers={"Authorization": f"Bearer {token}"},
                json={"kind": "api", "name": "bench", "config": {"secret": SECRET}},
            )
            channel_id = resp.json()["id"]
            rss_idle = rss_mb(proc.pid)
            rss: list[float] = []
            single, _ = asyncio.run(
                measure(port, token, channel_id, 1, args.events, "one", proc.pid, rss)
            )
            many, delivered = asyncio.run(
                measure(port, token, channel_id, args.clients, args.events, "many", proc.pid, rss)
            )
            rss_after = rss[-1]
    print(
        f"\nSSE fan-out — {args.clients} clients x {args.events} events (API-channel webhook → message.created)"
    )
    print(f"{'clients':>8} {'p50 ms':>8} {'p99 ms':>8} {'delivered':>10}")
    print(f"{1:>8} {pct(single, 0.5):8.1f} {pct(single, 0.99):8.1f} {'100%':>10}")
    print(f"{args.clients:>8} {pct(many, 0.5):8.1f} {pct(many, 0.99):8.1f} {delivered:>10.1%}")
    print(
        f"p99 ratio (N clients / 1 client): {pct(many, 0.99) / pct(single, 0.99):.1f}; server RSS idle {rss_idle:.0f} MB, with the clients connected {rss_after:.0f} MB"
    )
    print(
        orjson.dumps(
            {
                "clients": args.clients,
                "events": args.events,
                "single": {"p50": pct(single, 0.5), "p99": pct(single, 0.99)},
                "many": {"p50": pct(many, 0.5), "p99": pct(many, 0.99), "delivered": delivered},
                "rss_mb": {"idle": rss_idle, "after": rss_after},
                "machine": machine_facts(),
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
