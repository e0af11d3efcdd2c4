"""`python -m tidings.campaigns`: run only the campaign fan-out and the fallback timers.

For deployments that want dedicated campaign workers (and for the crash test, which kills
this process with SIGKILL mid-campaign). `tidings worker` runs the same loops, `campaigns`
and `fallback` in `tidings.workers.registry.WORKERS`.
"""

from __future__ import annotations

import asyncio

from tidings import logs
from tidings.campaigns import fanout
from tidings.config import load_settings
from tidings.delivery import fallback
from tidings.runtime import Runtime


async def main() -> None:
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    rt = Runtime(settings)
    await rt.start()
    rt.spawn(fanout.run(rt), name="worker-campaigns")
    rt.spawn(fallback.run(rt), name="worker-fallback")
    try:
        await asyncio.Event().wait()
    finally:
        await rt.stop()


if __name__ == "__main__":
    asyncio.run(main())
