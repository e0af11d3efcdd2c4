"""The ASGI application: API, provider webhooks, live stream, agent UI, and the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from tidings import profiles, timers
from tidings.actions import templates as template_sync
from tidings.api.admin import router as admin_router
from tidings.api.automation import router as automation_router
from tidings.api.campaigns import router as campaigns_router
from tidings.api.docs import mount_docs
from tidings.api.guards import RequestGuards
from tidings.api.health import mount_health
from tidings.api.media import router as media_router
from tidings.api.meta import router as meta_router
from tidings.api.reports import router as reports_router
from tidings.api.service import router as service_router
from tidings.api.sms import router as sms_router
from tidings.api.templates import router as templates_router
from tidings.api.ui import router as ui_router
from tidings.api.v1 import router as api_router
from tidings.api.webhooks import fast_path, provider_webhook, webhook_params
from tidings.automation import engine as automation
from tidings.campaigns import fanout
from tidings.channels.registry import get_adapter, kinds
from tidings.config import Settings
from tidings.delivery import fallback
from tidings.delivery import webhooks as outgoing
from tidings.delivery import worker as delivery
from tidings.domain.errors import TidingsError
from tidings.ingest import worker as ingest
from tidings.logs import RequestIds
from tidings.media import worker as media
from tidings.reports import rollup as report_rollup
from tidings.runtime import Runtime

log = logging.getLogger(__name__)

WORKERS: dict[str, Callable[[Runtime], Coroutine[Any, Any, None]]] = {
    "ingest": ingest.run,
    "delivery": delivery.run,
    "webhooks": outgoing.run,
    "campaigns": fanout.run,
    "fallback": fallback.run,
    "reports": report_rollup.run,
    "automation": automation.run,
    "assignment": timers.run,
    "templates": template_sync.run,
    "media": media.run,
    "profiles": profiles.run,
}
# One inbound lane each, for processes per lane on PostgreSQL (docs/architecture.md, "Lanes").
# Only by name: `ingest` (in every default set) already runs both lanes in one loop, which on
# SQLite is the loop that puts customers first.
LANE_WORKERS: dict[str, Callable[[Runtime], Coroutine[Any, Any, None]]] = {
    "ingest-customer": ingest.run_customer_lane,
    "ingest-status": ingest.run_status_lane,
}


@runtime_checkable
class SessionChannel(Protocol):
    """An adapter whose channels hold a long-lived connection instead of webhooks (SMPP binds):
    worker processes run `run_sessions(rt)`, which keeps one session per active channel."""

    def run_sessions(self, rt: Runtime) -> Coroutine[Any, Any, None]: ...


# `TIDINGS_WORKERS` may also name this: the long-lived provider sessions (SMPP binds).
SESSIONS = "sessions"


# Named layouts for PostgreSQL (docs/operations.md, "Sizing the lanes"). With two worker
# processes, one runs `inbound` (the lanes' loop alone) and the other `background` (every other
# loop): a process running every loop gave the lanes about a tenth of its event loop, and the
# customer lane fell seconds behind during a broadcast (docs/benchmarks.md, "Broadcast storm").
WORKER_SETS: dict[str, tuple[str, ...]] = {
    "inbound": ("ingest",),
    "background": (*(name for name in WORKERS if name != "ingest"), SESSIONS),
}


def chosen_workers(settings: Settings) -> list[str]:
    """The worker loops this process runs: all, or those `TIDINGS_WORKERS` names, loops or
    `WORKER_SETS` (an unknown name is a configuration error, not a silently idle worker).
    Naming `ingest` with a lane, or both lanes, runs the one loop over both lanes (`ingest`):
    two loops in one process would compete for the write lock instead of putting customers
    first."""
    known = [*WORKERS, SESSIONS, *LANE_WORKERS]
    if settings.workers is None:
        return [*WORKERS, SESSIONS]
    unknown = sorted(settings.workers - set(known) - set(WORKER_SETS))
    if unknown:
        raise ValueError(
            f"TIDINGS_WORKERS names unknown workers {', '.join(unknown)}; known: "
            f"{', '.join([*known, *WORKER_SETS])}"
        )
    names = set(settings.workers) - set(WORKER_SETS)
    for layout in settings.workers & set(WORKER_SETS):
        names |= set(WORKER_SETS[layout])
    if "ingest" in names or set(LANE_WORKERS) <= names:
        names = (names - set(LANE_WORKERS)) | {"ingest"}
    return [name for name in known if name in names]


def start_workers(rt: Runtime) -> None:
    chosen = chosen_workers(rt.settings)
    loops = {**WORKERS, **LANE_WORKERS}
    for name in chosen:
        if name in loops:
            rt.spawn(loops[name](rt), name=f"worker-{name}")
    if SESSIONS not in chosen:
        return
    for kind in kinds():
        adapter = get_adapter(kind)
        if isinstance(adapter, SessionChannel):
            rt.spawn(adapter.run_sessions(rt), name=f"sessions-{kind}")


class TidingsApp(FastAPI):
    """FastAPI, with provider webhooks answered ahead of the middleware stack
    (`api.webhooks.fast_path`: the hot path, measured by bench/ingest and bench/ack)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = webhook_params(scope) if scope["type"] == "http" else None
        if params is None:
            await super().__call__(scope, receive, send)
            return
        await fast_path(self.state.runtime, scope, receive, send, params)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _field(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[-1] if loc else "request")


def create_app(
    settings: Settings, *, run_workers: bool | None = None, runtime: Runtime | None = None
) -> FastAPI:
    rt = runtime or Runtime(settings)
    rt.web_process = True
    workers = settings.run_workers if run_workers is None else run_workers

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await rt.start()
        if workers:
            start_workers(rt)
        sandbox = getattr(app.state, "sandbox", None)
        if sandbox is not None:
            await sandbox.start(rt)
        try:
            yield
        finally:
            if sandbox is not None:
                try:
                    await asyncio.wait_for(sandbox.stop(), 5)
                except TimeoutError:
                    log.warning("shutdown: the sandbox did not stop within 5 s; going on")
            await rt.stop()

    app = TidingsApp(
        title="Tidings API",
        version="1",
        description='Multichannel shared inbox. Errors: {"error": {"code", "message"}}.',
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # our own page under the app's CSP: api/docs.py
        redoc_url=None,
        lifespan=lifespan,
        # Per-request OpenTelemetry provider lookups cost ~8 % of a webhook's CPU; operators
        # who run a collector can turn them back on.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = rt

    @app.exception_handler(TidingsError)
    async def _tidings_error(_request: Request, exc: TidingsError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = _field(first.get("loc", ()))
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        return _error(422, "validation_error", f"{field}: {message}")

    @app.exception_handler(OverflowError)
    async def _overflow(_request: Request, _exc: OverflowError) -> JSONResponse:
        return _error(422, "out_of_range", "a number in the request is out of range")

    @app.exception_handler(StatementError)
    async def _statement(_request: Request, exc: StatementError) -> JSONResponse:
        # An id or number beyond what the database stores (e.g. /contacts/10**30) fails while
        # binding the query; it is bad input, not a server error.
        if isinstance(exc.orig, OverflowError) or "out of range" in str(exc.orig):
            return _error(422, "out_of_range", "a number in the request is out of range")
        raise exc

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(api_router)
    app.include_router(media_router)
    app.include_router(meta_router)
    app.include_router(templates_router)
    mount_health(app)
    app.include_router(sms_router)
    app.include_router(reports_router)
    app.include_router(ui_router)
    app.include_router(admin_router)
    app.include_router(campaigns_router)
    app.include_router(automation_router)
    app.include_router(service_router)
    mount_docs(app)
    app.router.add_route("/webhooks/{kind}/{channel_id}", provider_webhook, methods=["GET", "POST"])
    # The webhook route is the hot path: match it before every API and UI route.
    hook = app.router.routes.pop()
    app.router.routes.insert(0, hook)

    from starlette.staticfiles import StaticFiles

    from tidings.web.routes import mount_web

    mount_web(app)
    app.mount(
        "/static",
        StaticFiles(directory=str(Path(__file__).parent / "web" / "static")),
        name="static",
    )
    if settings.sandbox:
        # Mounted only when TIDINGS_SANDBOX is on; its control routes need this install's
        # secret (simulators/guard.py).
        from tidings.simulators.sandbox import Sandbox, guarded

        sandbox = Sandbox(settings)
        app.state.sandbox = sandbox
        app.mount("/sandbox", guarded(sandbox.app, rt))
    # Outermost: nosniff on every answer; JSON bodies limited before any route parses them.
    app.add_middleware(RequestGuards, max_json_bytes=settings.max_json_bytes)
    app.add_middleware(RequestIds)  # outermost: every log line of a request names it
    return app


async def run_workers_forever(settings: Settings) -> None:
    rt = Runtime(settings)
    await rt.start()
    start_workers(rt)
    try:
        await asyncio.Event().wait()
    finally:
        await rt.stop()
