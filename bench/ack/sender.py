"""One open-loop sender process of `bench.ack`: POSTs pre-signed requests at fixed send times.

    python -m bench.ack.sender REQUESTS_FILE RESULT_FILE --port P --path /webhooks/... \
        --rate R --start EPOCH --offset K --stride N [--max-conns C]

The senders of one run share one fixed schedule: event g is due at `start + g / rate`
(`--rate` is the total of all senders), and sender k of N (`--offset k --stride N`) posts the
events g = k, k + N, k + 2N, ... in that order.

Latency is measured from the *scheduled* time, not from when the request went out, so a stall
in the server (or in this sender) shows up in the figures instead of silently lowering the
offered rate (coordinated omission). A request goes out on an idle keep-alive connection, or
on a new one while fewer than `--max-conns` are open; beyond that it waits for a connection,
and that wait counts too.

The HTTP/1.1 client is a few lines over asyncio streams: the requests are prebuilt bytes, the
answer is read by its Content-Length. That keeps the sender's CPU per request small enough for
a few processes to offer 3,000 requests/s on two shared cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import deque
from pathlib import Path

TIMEOUT_S = 30.0


class Pool:
    def __init__(self, port: int, max_conns: int) -> None:
        self.port = port
        self.max_conns = max_conns
        self.idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()
        self.open = 0
        self.freed = asyncio.Condition()
        self.peak = 0

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while True:
            if self.idle:
                return self.idle.pop()
            if self.open < self.max_conns:
                self.open += 1
                self.peak = max(self.peak, self.open)
                try:
                    return await asyncio.open_connection("127.0.0.1", self.port)
                except BaseException:
                    self.open -= 1
                    raise
            async with self.freed:
                await self.freed.wait()

    async def give(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        if conn is None:
            self.open -= 1
        else:
            self.idle.append(conn)
        async with self.freed:
            self.freed.notify()


async def exchange(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], req: bytes) -> int:
    reader, writer = conn
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def send_all(args: argparse.Namespace, requests: list[bytes]) -> dict[str, object]:
    pool = Pool(args.port, args.max_conns)
    n = len(requests)
    latency = [0.0] * n
    status = [0] * n
    # Wall-clock start shared by every sender process, mapped onto this process's clock.
    start = time.monotonic() + (args.start - time.time())
    period = args.stride / args.rate  # seconds between two sends of this process
    first = args.offset / args.rate
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int, due: float) -> None:
        conn = None
        try:
            conn = await pool.take()
            code = await asyncio.wait_for(exchange(conn, requests[i]), TIMEOUT_S)
        except Exception:
            code = 0
            if conn is not None:
                conn[1].close()
            conn = None
            await pool.give(None)
        else:
            await pool.give(conn)
        status[i] = code
        latency[i] = time.monotonic() - due

    behind_max = 0.0
    for i in range(n):
        due = start + first + i * period
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            behind_max = max(behind_max, -wait)
        task = asyncio.create_task(one(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))
    for _reader, writer in pool.idle:
        writer.close()
    return {
        "latency": latency,
        "status": status,
        "peak_conns": pool.peak,
        "sender_behind_max_s": behind_max,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("requests", type=Path)
    p.add_argument("result", type=Path)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--rate", type=float, required=True, help="total events/s of all senders")
    p.add_argument("--start", type=float, required=True, help="wall-clock time of event 0")
    p.add_argument("--offset", type=int, required=True)
    p.add_argument("--stride", type=int, required=True)
    p.add_argument("--max-conns", type=int, default=256)
    args = p.parse_args()
    head = (
        f"POST {args.path} HTTP/1.1\r\nhost: 127.0.0.1:{args.port}\r\n"
        "content-type: application/json\r\n"
    )
    requests = []
    for line in args.requests.read_bytes().splitlines():
        sig, body = line.split(b" ", 1)
        requests.append(
            (
                head + f"x-hub-signature-256: sha256={sig.decode()}\r\n"
                f"content-length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        pass
    result = asyncio.run(send_all(args, requests))
    args.result.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
