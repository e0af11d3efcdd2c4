"""The LINE simulator as its own process for `bench.line_multicast`: `python -m
bench.line_multicast.sim PORT` serves the sandbox's LINE simulator app unchanged (its
validation, quota, retry keys and LINE's rate limits: push 2,000/s, multicast 200/s)."""

from __future__ import annotations

import sys

import uvicorn

from tidings.simulators.line import LineSimulator


def main() -> None:
    port = int(sys.argv[1])
    sim = LineSimulator()
    uvicorn.run(sim.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
