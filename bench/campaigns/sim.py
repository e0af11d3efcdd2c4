"""The WhatsApp simulator as its own process for the campaign benchmark, with a stopwatch.

`python -m bench.campaigns.sim PORT THROUGHPUT` serves the real simulator app (its Graph API
validation, throughput limit 130429 per number, templates) and notes the arrival time of every
accepted `POST /{version}/{phone-number-id}/messages` (HTTP 200), per number, and the count of
refused ones. `GET /bench/times` returns them (`times`: every number's, `by_number`),
`POST /bench/reset` clears them. Status webhooks are off: the benchmark measures sends.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson
import uvicorn

from tidings.simulators.whatsapp import Knobs, WhatsAppSimulator


def build(throughput: float) -> Any:
    sim = WhatsAppSimulator(
        knobs=Knobs(
            throughput_per_second=throughput,
            auto_statuses=[],
            pair_rate_limit=False,
            history_limit=1000,
        )
    )
    times: dict[str, list[float]] = {}
    refused: dict[str, int] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/bench/"):
            if scope["path"] == "/bench/reset":
                times.clear()
                refused.clear()
            every = sorted(t for number in times.values() for t in number)
            body = orjson.dumps({"times": every, "by_number": times, "refused": refused})
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        is_send = (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].endswith("/messages")
        )
        if not is_send:
            await sim.app(scope, receive, send)
            return

        arrived = time.time()  # the provider counts arrivals: stamp accepted sends by theirs
        number = scope["path"].rstrip("/").split("/")[-2]

        async def timed(message: Any) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status == 200:
                    times.setdefault(number, []).append(arrived)
                else:
                    refused[str(status)] = refused.get(str(status), 0) + 1
            await send(message)

        await sim.app(scope, receive, timed)

    return app


def main() -> None:
    port, throughput = int(sys.argv[1]), float(sys.argv[2])
    uvicorn.run(build(throughput), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
