"""`tidings doctor` tells a healthy installation from a broken one."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.conftest import TIDINGS, Owner, Server, tidings_env


def doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TIDINGS, "doctor"], env=env, capture_output=True, text=True, timeout=60)


async def doctor_async(env: dict[str, str]) -> tuple[int, str]:
    # The server under test runs on this event loop: never block it while doctor probes it.
    proc = await asyncio.create_subprocess_exec(
        TIDINGS, "doctor", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_doctor_passes_on_a_running_installation(
    server: Server, owner: Owner, tmp_path: Path
) -> None:
    env = tidings_env(server.settings.database_url, tmp_path, server.settings.port)
    env["TIDINGS_SECRET_KEY"] = server.settings.secret_key
    code, out = await doctor_async(env)
    assert code == 0, out
    lines = out.splitlines()
    assert any(line.startswith("ok    database") for line in lines)
    assert any(line.startswith("ok    webhooks") for line in lines), out


def test_doctor_fails_on_an_unmigrated_database(tmp_path: Path) -> None:
    env = tidings_env(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", tmp_path, 9)
    result = doctor(env)
    assert result.returncode == 1
    assert "FAIL  database" in result.stdout
    assert "run `tidings migrate`" in result.stdout
