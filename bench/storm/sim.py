"""The WhatsApp simulator as its own process for the broadcast-storm benchmark.

`python -m bench.storm.sim PORT` serves the product's simulator (`tidings.simulators.whatsapp`)
under uvicorn with uvloop and httptools, access log off; the benchmark sets its knobs through
`POST /_sim/config` and reads the webhook sender's figures from `GET /_sim/stats`. Its own
process, so the simulator's CPU is not counted against Tidings' event loop.
"""

from __future__ import annotations

import sys

import uvicorn

from tidings.simulators.whatsapp import WhatsAppSimulator


def main() -> None:
    sim = WhatsAppSimulator()
    uvicorn.run(
        sim.app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        # Longer than any pause between the benchmark's polls: no kept-alive connection is
        # closed under a request.
        timeout_keep_alive=300,
    )


if __name__ == "__main__":
    main()
