"""Shared fixtures: a migrated database per test (SQLite or PostgreSQL, chosen by
TIDINGS_TEST_DATABASE_URL), a real Tidings server on a loopback port with the sandbox mounted,
and an owner with an API token.

The database is migrated once per session into a template (a file copy for SQLite,
CREATE DATABASE ... TEMPLATE for PostgreSQL), so each test starts from a clean schema quickly.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

from tidings.actions.admin import bootstrap
from tidings.app import create_app
from tidings.config import Settings, load_settings, sandbox_token
from tidings.runtime import Runtime
from tidings.simulators.guard import TOKEN_HEADER, TOKEN_PARAM
from tidings.simulators.whatsapp import WhatsAppSimulator
from tidings.storage.db import migrate

PG_URL = os.environ.get("TIDINGS_TEST_DATABASE_URL", "")
# The egress policy refuses loopback; the tests' simulators and receivers all live on it, so
# every test server (in-process or `tidings serve`) allows it — here, in one place. A test of the
# policy itself overrides `egress_allow`.
EGRESS_ALLOW = ("127.0.0.1",)
# In-process test servers keep idle keep-alive connections this long (see start_server).
KEEP_ALIVE_SECONDS = 60
REDIS_URL = os.environ.get("TIDINGS_TEST_REDIS_URL") or None


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PORTS_BELOW = _ephemeral_low()


def free_port() -> int:
    """A free port for a test server, taken below the kernel's ephemeral range: a port the
    kernel hands out (bind to 0) can be given to some outgoing connection between this check
    and the server's bind, which two suites running at once (scripts/check) made happen."""
    low = max(1024, _PORTS_BELOW - 12_000)
    for _ in range(100):
        port = random.randrange(low, _PORTS_BELOW)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The sandbox SMSC listens on one fixed port (2775 by default). A test that stops and restarts
# it leaves that port free for a moment; another suite on the machine (scripts/check's second
# store, a second checkout) could take it and the channel would bind to the wrong SMSC. Each
# test process takes a port of its own unless one is given.
os.environ.setdefault("TIDINGS_SANDBOX_SMPP_PORT", str(free_port()))


def _pg_parts(url: str) -> tuple[str, str]:
    base, _, name = url.rpartition("/")
    return base, name


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture(scope="session")
def db_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database to copy from: a file path (SQLite) or a database name (PostgreSQL)."""
    if PG_URL:
        base, _ = _pg_parts(PG_URL)
        name = f"tmpl_{uuid.uuid4().hex[:10]}"

        async def create() -> None:
            conn = await asyncpg.connect(_asyncpg_dsn(PG_URL))
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(create())
        migrate(f"{base}/{name}")
        return name
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate(f"sqlite+aiosqlite:///{path}")
    return str(path)


@pytest.fixture
async def database_url(db_template: str, tmp_path: Path) -> AsyncIterator[str]:
    if PG_URL:
        base, _ = _pg_parts(PG_URL)
        name = f"t_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(_asyncpg_dsn(PG_URL))
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{db_template}"')
        finally:
            await conn.close()
        yield f"{base}/{name}"
        conn = await asyncpg.connect(_asyncpg_dsn(PG_URL))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
    else:
        path = tmp_path / "tidings.db"
        shutil.copy(db_template, path)
        yield f"sqlite+aiosqlite:///{path}"


def make_settings(database_url: str, data_dir: Path, port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "redis_url": None,
        "secret_key": "test-secret-key-" + "x" * 32,
        "public_url": f"http://127.0.0.1:{port}",
        "sandbox": True,
        "host": "127.0.0.1",
        "port": port,
        "run_workers": True,
        "log_level": "warning",
        "egress_allow": EGRESS_ALLOW,
    }
    values.update(overrides)
    return load_settings(**values)


@dataclass
class Server:
    url: str
    settings: Settings
    runtime: Runtime
    app: Any


class _Uvicorn(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test runner owns signals
        return None


async def start_server(settings: Settings) -> tuple[Server, _Uvicorn, asyncio.Task[None]]:
    app = create_app(settings)
    # Keep idle connections longer than httpx clients do (5 s): with equal timeouts a client
    # could reuse a connection at the moment the server closes it ("Server disconnected").
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=settings.port,
        log_level="warning",
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    server = _Uvicorn(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    else:
        raise RuntimeError("server did not start")
    return Server(settings.public_url, settings, app.state.runtime, app), server, task


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Server]:
    """A Tidings server for the length of the block, stopped cleanly after it."""
    srv, uv, task = await start_server(settings)
    try:
        yield srv
    finally:
        uv.should_exit = True
        await asyncio.wait_for(task, 45)


# --- the sandbox's secret (src/tidings/simulators/guard.py): every test client that drives
# `/sandbox/.../_sim/...` or `/sandbox/phone` sends it; provider-API routes need no more than
# the provider credential.


def sandbox_headers(of: Server | Settings | dict[str, str]) -> dict[str, str]:
    """The header that opens the sandbox of a test server, of settings, or of a `tidings`
    process started with the environment `of` (see `tidings_env`)."""
    if isinstance(of, dict):
        return {TOKEN_HEADER: sandbox_token(of["TIDINGS_SECRET_KEY"])}
    settings = of if isinstance(of, Settings) else of.settings
    return {TOKEN_HEADER: settings.sandbox_token}


def sandbox_phone_url(server: Server) -> str:
    """The customer phone page's link as `tidings serve` prints it (sets the sandbox cookie)."""
    return f"{server.url}/sandbox/phone?{TOKEN_PARAM}={server.settings.sandbox_token}"


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    async with serving(make_settings(database_url, tmp_path / "data", free_port())) as srv:
        yield srv


@dataclass
class Owner:
    workspace_id: int
    agent_id: int
    inbox_id: int
    token: str


@pytest.fixture
async def owner(server: Server) -> Owner:
    result = await bootstrap(server.runtime, "owner@example.com", "correct horse battery", "Test")
    return Owner(
        result["workspace_id"], result["agent_id"], result["inbox_id"], result["api_token"]
    )


@pytest.fixture
async def api(server: Server, owner: Owner) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {owner.token}"}, timeout=20
    ) as client:
        yield client


async def eventually(check: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll an async `check` until it returns a truthy value (or raise with the last value)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while True:
        last = await check()
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")
        await asyncio.sleep(interval)


@dataclass
class Receiver:
    """A small HTTP endpoint on loopback that records what it receives and answers with
    scripted responses (then 200): stands in for an integrator's system or a failing provider."""

    url: str
    requests: list[tuple[dict[str, str], bytes]]
    script: list[tuple[int, dict[str, str], bytes]]
    # (monotonic time, status answered, body) per request, for retry-timing checks.
    log: list[tuple[float, int, bytes]] = field(default_factory=list)
    # Seconds to take before answering (a slow provider).
    delay: float = 0.0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    port = free_port()
    rec = Receiver(f"http://127.0.0.1:{port}/hook", [], [])

    async def hook(request: Request) -> Response:
        body = await request.body()
        rec.requests.append(({k.lower(): v for k, v in request.headers.items()}, body))
        if rec.delay:
            await asyncio.sleep(rec.delay)
        if rec.script:
            status, headers, content = rec.script.pop(0)
            rec.log.append((time.monotonic(), status, body))
            return Response(content, status_code=status, headers=headers)
        rec.log.append((time.monotonic(), 200, body))
        return Response(b"{}", media_type="application/json")

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    server = _Uvicorn(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield rec
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


# --- real `tidings` processes and a standalone WhatsApp simulator (crash and scale tests) ---

TIDINGS = str(Path(sys.executable).parent / "tidings")


def tidings_env(database_url: str, data_dir: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "TIDINGS_DATABASE_URL": database_url,
        "TIDINGS_DATA_DIR": str(data_dir),
        "TIDINGS_PORT": str(port),
        "TIDINGS_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TIDINGS_SANDBOX": "0",
        "TIDINGS_SECRET_KEY": "crash-test-secret-key-" + "y" * 30,
        "TIDINGS_LOG_LEVEL": "warning",
        "TIDINGS_EGRESS_ALLOW": ",".join(EGRESS_ALLOW),
    }


def migrate_and_bootstrap(env: dict[str, str]) -> str:
    """`tidings migrate` and `tidings bootstrap` (owner o@example.com) in child processes with
    `env`, as an operator would; returns the owner's API token."""
    subprocess.run([TIDINGS, "migrate"], env=env, check=True, capture_output=True)
    boot = subprocess.run(
        [TIDINGS, "bootstrap", "--email", "o@example.com", "--password", "pw-pw-pw-pw"],
        env=env,
        check=True,
        capture_output=True,
    )
    return str(json.loads(boot.stdout)["api_token"])


async def connect_whatsapp(
    api: httpx.AsyncClient, control: httpx.AsyncClient, sim_url: str, pnid: str, secret: str
) -> dict[str, Any]:
    """A WhatsApp channel on the simulator at `sim_url` (token "tok", verify token "v"), and
    the simulator's account for it pointed at the channel's webhook. Returns the channel."""
    from tests.factories import create_channel

    config = {
        "phone_number_id": pnid,
        "access_token": "tok",
        "app_secret": secret,
        "verify_token": "v",
        "api_base_url": sim_url,
    }
    channel = await create_channel(api, "whatsapp", config, name="WA")
    account = {
        "access_token": "tok",
        "app_secret": secret,
        "verify_token": "v",
        "webhook_url": channel["webhook_url"],
    }
    assert (await control.put(f"/_sim/accounts/{pnid}", json=account)).status_code == 200
    return channel


async def start_tidings(env: dict[str, str]) -> subprocess.Popen[bytes]:
    # stderr goes to a file, not a pipe: nobody reads a pipe while the server runs, and a server
    # that logs more than the pipe holds would block on its next log line.
    log_path = Path(env.get("TIDINGS_DATA_DIR", tempfile.gettempdir())) / "serve-stderr.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            [TIDINGS, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=log_file
        )
    url = env["TIDINGS_PUBLIC_URL"]

    async def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(
                f"tidings serve exited: {log_path.read_text(errors='replace')[-4000:]}"
            )
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"{url}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        # Generous: a loaded two-core CI machine can take a while to start a process.
        await eventually(up, timeout=60, interval=0.1)
    except BaseException:
        proc.kill()  # never leave a half-started server behind
        proc.wait()
        raise
    return proc


@pytest.fixture
async def simulator() -> AsyncIterator[tuple[WhatsAppSimulator, str]]:
    sim = WhatsAppSimulator()
    port = free_port()
    server = _Uvicorn(
        uvicorn.Config(
            sim.app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sim, f"http://127.0.0.1:{port}"
    finally:
        await sim.aclose()
        server.should_exit = True
        await asyncio.wait_for(task, 10)
