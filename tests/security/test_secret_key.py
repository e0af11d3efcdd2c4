"""A short secret key stops `serve` (issue 15, item 9).

The secret key signs session cookies: with a 1-character key a forged cookie signed in as the
owner. `serve` and `worker` now refuse keys under 32 bytes before anything starts; the key
generated into the data dir is long enough.
"""

from __future__ import annotations

import socket
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TIDINGS, free_port, tidings_env
from tidings.config import MIN_SECRET_KEY_BYTES, load_settings, secret_key_problem


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize("key", ["k", "x" * (MIN_SECRET_KEY_BYTES - 1)])
def test_a_short_secret_key_stops_the_process(command: str, key: str, tmp_path: Path) -> None:
    port = free_port()
    env = tidings_env(f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}", tmp_path / "data", port)
    env["TIDINGS_SECRET_KEY"] = key
    # Were the key accepted, the process would run until the timeout (and the test fail).
    done = subprocess.run([TIDINGS, command], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"TIDINGS_SECRET_KEY is {len(key)} bytes" in done.stderr
    assert f"at least {MIN_SECRET_KEY_BYTES}" in done.stderr
    with socket.socket() as s:  # nothing was left listening
        assert s.connect_ex(("127.0.0.1", port)) != 0
    assert not (tmp_path / "tidings.db").exists()  # it stopped before migrating


def test_the_limit_counts_bytes() -> None:
    def problem(key: str) -> str | None:
        return secret_key_problem(load_settings(secret_key=key))

    assert problem("é" * 16) is None  # 32 bytes in UTF-8
    assert problem("x" * MIN_SECRET_KEY_BYTES) is None
    assert problem("é" * 15) is not None


def test_the_generated_key_is_long_enough_and_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIDINGS_SECRET_KEY", raising=False)
    monkeypatch.setenv("TIDINGS_DATA_DIR", str(tmp_path / "data"))
    settings = load_settings()
    assert secret_key_problem(settings) is None
    assert len(settings.secret_key.encode()) >= 64
    key_file = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_settings().secret_key == settings.secret_key  # kept, not regenerated
