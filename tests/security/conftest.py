"""A real `tidings serve` process with every sandbox channel connected, for black-box security
tests. Workers are off: fuzzed input may create channels or webhook subscriptions pointing
anywhere, and nothing may ever be sent to them (only loopback traffic here)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import TIDINGS, free_port, tidings_env


@dataclass
class LiveServer:
    url: str
    token: str
    channels: list[dict[str, object]]
    database_url: str
    log: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("security")
    database_url = f"sqlite+aiosqlite:///{tmp / 'tidings.db'}"
    port = free_port()
    env = {
        **tidings_env(database_url, tmp / "data", port),
        "TIDINGS_SANDBOX": "1",
        "TIDINGS_RUN_WORKERS": "0",
        "TIDINGS_LOG_LEVEL": "debug",
    }
    subprocess.run([TIDINGS, "migrate"], env=env, check=True, capture_output=True)
    boot = json.loads(
        subprocess.run(
            [
                TIDINGS,
                "bootstrap",
                "--email",
                "sec@example.com",
                "--password",
                "pw-pw-pw-pw",
                "--demo",
            ],
            env=env,
            check=True,
            capture_output=True,
        ).stdout
    )
    log = tmp / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([TIDINGS, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = env["TIDINGS_PUBLIC_URL"]
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(log.read_text())
                import time

                time.sleep(0.1)
            yield LiveServer(url, boot["api_token"], boot["channels"], database_url, log, env)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
