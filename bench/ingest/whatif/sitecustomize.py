"""What-if patches for diagnosis, loaded into the Tidings server only when asked:

    python -m bench.ingest.run --tidings-env PYTHONPATH=bench/ingest/whatif \
        --tidings-env TIDINGS_BENCH_WHATIF=yield,route[,stats]

They change the running server in memory to measure a proposed fix before anyone edits src/;
nothing here is part of Tidings. Each knob is one proposal from docs/benchmarks.md:

- yield: the ingest worker gives the single SQLite write connection back to the webhook group
  committer as soon as webhooks are waiting (after at least one event), instead of holding it
  for a whole batch of 100 events.
- route: the webhook route is matched first (before every included API/UI router), and FastAPI's
  per-request OpenTelemetry provider lookups are off.
- stats: every ~2.5 s append group-commit figures (commits, rows per commit, commit time) to
  the file named by TIDINGS_BENCH_STATS.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

_KNOBS = {k.strip() for k in os.environ.get("TIDINGS_BENCH_WHATIF", "").split(",") if k.strip()}


def _patch_yield() -> None:
    import inspect

    import tidings.ingest.worker as worker

    src = inspect.getsource(worker.process_batch)
    loop = "        for row in rows:\n"
    if loop not in src:
        raise RuntimeError("whatif yield: process_batch changed shape; update the patch")
    patched = src.replace(
        loop,
        "        for _index, row in enumerate(rows):\n"
        "            if _index and rt.committer._pending:\n"
        "                break\n",
        1,
    )
    exec(compile(patched, worker.__file__ or "worker.py", "exec"), worker.__dict__)  # noqa: S102


def _patch_route() -> None:
    import tidings.app as app_module

    create = app_module.create_app

    def create_app(*args: Any, **kwargs: Any) -> Any:
        app = create(*args, **kwargs)
        routes = app.router.routes
        hooks = [r for r in routes if getattr(r, "path", "") == "/webhooks/{kind}/{channel_id}"]
        for route in hooks:
            routes.remove(route)
            routes.insert(0, route)
        app._telemetry.update({"tracing": False, "metrics": False, "logs": False})
        return app

    app_module.create_app = create_app


def _append(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line)


def _patch_stats() -> None:
    from tidings.ingest import committer

    out = os.environ.get("TIDINGS_BENCH_STATS", "commit-stats.txt")
    stats: list[tuple[int, float]] = []
    last = [time.monotonic()]
    commit = committer.GroupCommitter._commit

    async def _commit(self: Any, batch: Any) -> None:
        start = time.perf_counter()
        await commit(self, batch)
        stats.append((sum(len(rows) for rows, _ in batch), time.perf_counter() - start))
        if time.monotonic() - last[0] > 2.5:
            last[0] = time.monotonic()
            rows = sorted(s[0] for s in stats)
            secs = sorted(s[1] for s in stats)
            n = len(stats)
            _append(
                out,
                f"commits={n} rows={sum(rows)} rows/commit p50={rows[n // 2]} "
                f"max={rows[-1]} commit ms p50={secs[n // 2] * 1e3:.1f} "
                f"p90={secs[int(n * 0.9)] * 1e3:.1f} max={secs[-1] * 1e3:.1f} "
                f"busy={sum(secs):.2f}s\n",
            )
            stats.clear()

    committer.GroupCommitter._commit = _commit  # type: ignore[method-assign]


if "serve" in sys.argv:
    if "yield" in _KNOBS:
        _patch_yield()
    if "route" in _KNOBS:
        _patch_route()
    if "stats" in _KNOBS:
        _patch_stats()
