"""The ASGI application: API, provider webhooks, live stream, agent UI, and the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from tidings.api.admin import router as admin_router
from tidings.api.automation import router as automation_router
from tidings.api.avatars import router as avatars_router
from tidings.api.campaigns import router as campaigns_router
from tidings.api.channels_admin import help_router as channel_help_router
from tidings.api.channels_admin import router as channels_admin_router
from tidings.api.contacts import router as contacts_router
from tidings.api.docs import mount_docs
from tidings.api.guards import RequestGuards
from tidings.api.guards import error_response as _error
from tidings.api.health import mount_health
from tidings.api.macros import router as macros_router
from tidings.api.me import router as me_router
from tidings.api.media import router as media_router
from tidings.api.message_templates import router as templates_router
from tidings.api.notifications import router as notifications_router
from tidings.api.reply_options import router as reply_options_router
from tidings.api.reports import router as reports_router
from tidings.api.service import router as service_router
from tidings.api.sms import router as sms_router
from tidings.api.ui import router as ui_router
from tidings.api.v1 import router as api_router
from tidings.api.webhooks import fast_path, provider_webhook, webhook_params
from tidings.config import Settings
from tidings.domain.errors import TidingsError
from tidings.logs import RequestIds
from tidings.runtime import Runtime
from tidings.web.routes import mount_web
from tidings.workers.registry import start_workers

log = logging.getLogger(__name__)


class TidingsApp(FastAPI):
    """FastAPI, with provider webhooks answered ahead of the middleware stack
    (`api.webhooks.fast_path`: the hot path, measured by bench/ingest and bench/ack)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = webhook_params(scope) if scope["type"] == "http" else None
        if params is None:
            await super().__call__(scope, receive, send)
            return
        await fast_path(self.state.runtime, scope, receive, send, params)


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

    # Before api_router: /contacts/directory and /contacts.csv beside /contacts/{contact_id}.
    app.include_router(contacts_router)
    app.include_router(channels_admin_router)
    app.include_router(channel_help_router)
    app.include_router(me_router)
    app.include_router(api_router)
    app.include_router(media_router)
    app.include_router(reply_options_router)
    app.include_router(templates_router)
    mount_health(app)
    app.include_router(sms_router)
    app.include_router(reports_router)
    app.include_router(ui_router)
    app.include_router(notifications_router)
    app.include_router(macros_router)
    app.include_router(avatars_router)
    app.include_router(admin_router)
    app.include_router(campaigns_router)
    app.include_router(automation_router)
    app.include_router(service_router)
    mount_docs(app)
    app.router.add_route("/webhooks/{kind}/{channel_id}", provider_webhook, methods=["GET", "POST"])
    # The webhook route is the hot path: match it before every API and UI route.
    hook = app.router.routes.pop()
    app.router.routes.insert(0, hook)

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
