"""Secrets never reach the logs: a server at debug level works every sandbox channel both ways,
then its whole log is searched for every channel secret, the API token and the password."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import TIDINGS, free_port, sandbox_headers, tidings_env
from tidings.channels.registry import get_adapter
from tidings.storage.crypto import SecretBox

PASSWORD = "a-password-that-must-not-be-logged"


def test_no_secret_in_debug_logs(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}"
    env = {
        **tidings_env(database_url, tmp_path / "data", free_port()),
        "TIDINGS_SANDBOX": "1",
        "TIDINGS_LOG_LEVEL": "debug",
    }
    subprocess.run([TIDINGS, "migrate"], env=env, check=True, capture_output=True)
    boot = json.loads(
        subprocess.run(
            [TIDINGS, "bootstrap", "--email", "logs@example.com", "--password", PASSWORD, "--demo"],
            env=env,
            check=True,
            capture_output=True,
        ).stdout
    )
    url = env["TIDINGS_PUBLIC_URL"]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([TIDINGS, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            api = httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {boot['api_token']}"}, timeout=30
            )
            phone = httpx.Client(
                base_url=f"{url}/sandbox/phone", headers=sandbox_headers(env), timeout=30
            )
            channels = phone.get("/channels").json()
            assert len(channels) >= 5
            for i, channel in enumerate(channels):
                user = f"+4915100009{i:03d}" if channel["kind"] != "api" else f"web-user-{i}"
                phone.post(
                    "/send",
                    json={
                        "channel_id": channel["id"],
                        "user": user,
                        "name": "Log Test",
                        "text": f"hello {i}",
                    },
                )
            deadline = time.monotonic() + 60
            convs: list[dict[str, object]] = []
            while time.monotonic() < deadline and len(convs) < len(channels) - 1:
                convs = api.get("/api/v1/conversations", params={"limit": 100}).json()["data"]
                time.sleep(0.3)
            assert len(convs) >= len(channels) - 1, convs
            for conv in convs:
                api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "a reply"})
            time.sleep(3)  # let the delivery worker send through every adapter
            api.close()
            phone.close()
        finally:
            proc.terminate()
            proc.wait(timeout=15)

    box = SecretBox(env["TIDINGS_SECRET_KEY"])
    db = sqlite3.connect(tmp_path / "tidings.db")
    secrets: list[str] = [boot["api_token"], PASSWORD, env["TIDINGS_SECRET_KEY"]]
    for kind, encrypted in db.execute("SELECT kind, config_encrypted FROM channel"):
        config = box.decrypt_json(encrypted)
        secrets += [str(config[f]) for f in get_adapter(kind).secret_fields if config.get(f)]
    db.close()
    text = log.read_text(errors="replace")
    assert len(text) > 1000, "the server logged almost nothing: the test would prove nothing"
    leaked = [s[:6] + "…" for s in secrets if len(s) >= 8 and s in text]
    assert not leaked, f"secrets found in the debug log: {leaked}"
