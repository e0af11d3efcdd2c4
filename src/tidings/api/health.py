"""Liveness (`/healthz`), readiness (`/readyz`: database and Redis answer) and `/metrics`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from tidings.metrics import metrics_endpoint
from tidings.runtime import Runtime


async def readiness(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    try:
        async with rt.db.read() as s:
            await s.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    if rt.settings.redis_url:
        from redis.asyncio import Redis

        client = Redis.from_url(rt.settings.redis_url, socket_timeout=2)
        try:
            await client.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
        finally:
            await client.aclose()
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


def mount_health(app: FastAPI) -> None:
    app.add_route("/readyz", readiness, methods=["GET"], include_in_schema=False)
    app.add_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
