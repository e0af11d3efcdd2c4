"""Every line a real `tidings serve` writes to stderr is one JSON object (issue #15, item 7):
uvicorn's startup and access lines included, messages as strings (not Python reprs), a
traceback inside its line's `exc` field, and the request id and channel id where known.
`TIDINGS_LOG_FORMAT=text` gives plain lines instead."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response

from tests.conftest import (
    eventually,
    free_port,
    make_settings,
    migrate_and_bootstrap,
    start_server,
    start_tidings,
    tidings_env,
)
from tidings import signing
from tidings.logs import JsonFormatter

SECRET = "json-logs-api-channel-secret"


def read_lines(log: Path) -> list[str]:
    return log.read_text(errors="replace").splitlines()


def parsed(log: Path) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(read_lines(log), 1):
        try:
            doc = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {n} of stderr is not JSON: {line!r}") from None
        assert isinstance(doc, dict), line
        out.append(doc)
    return out


async def test_every_stderr_line_is_one_json_object(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    env = {
        **tidings_env(f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}", data, port),
        "TIDINGS_LOG_LEVEL": "info",
        "TIDINGS_ACCESS_LOG": "1",
    }
    token = migrate_and_bootstrap(env)
    proc = await start_tidings(env)
    log = data / "serve-stderr.log"
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=20
        ) as api:
            resp = await api.post(
                "/api/v1/channels",
                json={"kind": "api", "name": "Logs", "config": {"secret": SECRET}},
            )
            assert resp.status_code == 201, resp.text
            channel_id = resp.json()["id"]
            listed = await api.get(
                "/api/v1/conversations?hub.verify_token=do-not-log",
                headers={"X-Request-ID": "req-7"},
            )
            assert listed.headers["x-request-id"] == "req-7"
            # Signed, stored, then refused by the ingest worker: a warning with a traceback.
            body = orjson.dumps({"messages": [{"id": 'm-"1"\nx', "from": {}}]})
            hook = await api.post(
                f"/webhooks/api/{channel_id}",
                content=body,
                headers={"Content-Type": "application/json", **signing.sign_headers(SECRET, body)},
            )
            assert hook.status_code == 200, hook.text

        async def failure_logged() -> list[dict[str, Any]]:
            return [d for d in parsed(log) if "inbound event" in d.get("msg", "")]

        [failure] = await eventually(failure_logged, timeout=30)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    lines = parsed(log)  # every line, shutdown included
    assert len(lines) == len(read_lines(log)) >= 5
    assert all({"t", "level", "logger", "msg"} <= d.keys() for d in lines)
    assert all(isinstance(d["msg"], str) for d in lines)
    # uvicorn's own lines arrive as JSON too: startup, and one access line per request.
    assert any(d["logger"].startswith("uvicorn") and "Uvicorn running" in d["msg"] for d in lines)
    access = [d for d in lines if d["logger"] == "uvicorn.access"]
    mine = [d for d in access if d.get("request_id") == "req-7"]
    assert len(mine) == 1, access
    assert mine[0]["path"] == "/api/v1/conversations" and mine[0]["status"] == 200
    assert all(d.get("request_id") for d in access)
    assert "do-not-log" not in log.read_text()  # query strings (handshake tokens) are dropped
    # The traceback is inside the line, and the line names the channel.
    assert failure["level"] == "WARNING"
    assert failure["channel_id"] == channel_id
    assert failure["exc"].startswith("Traceback") and "PayloadError" in failure["exc"]


async def test_text_format_for_humans(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    env = {
        **tidings_env(f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}", data, port),
        "TIDINGS_LOG_LEVEL": "info",
        "TIDINGS_LOG_FORMAT": "text",
    }
    migrate_and_bootstrap(env)
    proc = await start_tidings(env)
    proc.terminate()
    proc.wait(timeout=30)
    lines = read_lines(data / "serve-stderr.log")
    running = [line for line in lines if "Uvicorn running" in line]
    assert running and not running[0].startswith("{"), lines
    assert " INFO uvicorn.error: " in running[0]


async def test_a_request_traceback_names_its_request(database_url: str, tmp_path: Path) -> None:
    """An unhandled error in a route: uvicorn logs the traceback after the app has given up,
    and that line must still carry the request id the 500 answer names (it carried none)."""
    settings = make_settings(database_url, tmp_path / "data", free_port())
    srv, uv, task = await start_server(settings)

    async def boom(_request: Request) -> Response:
        raise RuntimeError("boom for the log")

    srv.app.router.add_route("/boom", boom)
    caught: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(JsonFormatter().format(record))

    handler = Capture()
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addHandler(handler)
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=20) as client:
            resp = await client.get("/boom", headers={"X-Request-ID": "req-boom"})
    finally:
        uvicorn_error.removeHandler(handler)
        uv.should_exit = True
        await asyncio.wait_for(task, 45)
    assert resp.status_code == 500
    assert resp.headers.get("x-request-id") == "req-boom"
    assert "req-boom" in resp.text
    lines = [orjson.loads(line) for line in caught]
    [line] = [d for d in lines if "boom for the log" in d.get("exc", "")]
    assert line["request_id"] == "req-boom"
    assert "\n" not in caught[lines.index(line)]
