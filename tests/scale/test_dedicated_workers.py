"""`TIDINGS_WORKERS`: a process runs only the worker loops it names. A web process without the
delivery worker queues a reply and sends nothing; a `tidings worker` running only `delivery`
sends it, once. Runs on the suite's database (SQLite: two processes share one file)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    TIDINGS,
    connect_whatsapp,
    eventually,
    free_port,
    migrate_and_bootstrap,
    start_tidings,
    tidings_env,
)
from tidings.config import load_settings
from tidings.simulators.whatsapp import WhatsAppSimulator
from tidings.workers.registry import SESSIONS, WORKERS, chosen_workers

pytestmark = pytest.mark.slow
PNID = "100000000000556"
SECRET = "dedicated-workers-app-secret"


def test_workers_setting_names_loops_and_refuses_unknown_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIDINGS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TIDINGS_SECRET_KEY", "k" * 40)
    monkeypatch.delenv("TIDINGS_WORKERS", raising=False)
    assert chosen_workers(load_settings()) == [*WORKERS, SESSIONS]
    monkeypatch.setenv("TIDINGS_WORKERS", "all")
    assert chosen_workers(load_settings()) == [*WORKERS, SESSIONS]
    monkeypatch.setenv("TIDINGS_WORKERS", " delivery , campaigns")
    assert chosen_workers(load_settings()) == ["delivery", "campaigns"]
    monkeypatch.setenv("TIDINGS_WORKERS", "delivery,mailer")
    with pytest.raises(ValueError, match="unknown workers mailer"):
        chosen_workers(load_settings())
    # Inbound lanes (docs/architecture.md, "Lanes"): a process per lane, or both in one loop.
    monkeypatch.setenv("TIDINGS_WORKERS", "ingest-status")
    assert chosen_workers(load_settings()) == ["ingest-status"]
    monkeypatch.setenv("TIDINGS_WORKERS", "ingest-customer,delivery")
    assert chosen_workers(load_settings()) == ["delivery", "ingest-customer"]
    for both in ("ingest-customer,ingest-status", "ingest,ingest-status"):
        monkeypatch.setenv("TIDINGS_WORKERS", both)
        assert chosen_workers(load_settings()) == ["ingest"]
    monkeypatch.setenv("TIDINGS_WORKERS", "ingest-statuses")
    with pytest.raises(ValueError, match="unknown workers ingest-statuses"):
        chosen_workers(load_settings())
    # The two-worker layout on PostgreSQL (docs/operations.md, "Sizing the lanes"): between
    # them, `inbound` and `background` run every loop once, and only `inbound` runs the lanes.
    monkeypatch.setenv("TIDINGS_WORKERS", "inbound")
    assert chosen_workers(load_settings()) == ["ingest"]
    monkeypatch.setenv("TIDINGS_WORKERS", "background")
    background = chosen_workers(load_settings())
    assert "ingest" not in background and SESSIONS in background
    assert sorted(["ingest", *background]) == sorted([*WORKERS, SESSIONS])


@pytest.mark.parametrize("bad", ["mailer", "ingest-receipts"])
def test_worker_with_an_unknown_name_exits_with_the_reason(tmp_path: Path, bad: str) -> None:
    env = {
        **tidings_env(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", tmp_path, free_port()),
        "TIDINGS_WORKERS": f"delivery,{bad}",
    }
    done = subprocess.run([TIDINGS, "worker"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"unknown workers {bad}" in done.stderr
    assert "known: ingest, delivery" in done.stderr
    assert "ingest-customer, ingest-status" in done.stderr


async def test_a_dedicated_delivery_process_sends_what_the_web_process_queued(
    database_url: str, tmp_path: Path, simulator: tuple[WhatsAppSimulator, str]
) -> None:
    sim, sim_url = simulator
    port = free_port()
    web_env = {
        **tidings_env(database_url, tmp_path / "web", port),
        "TIDINGS_WORKERS": ",".join(name for name in [*WORKERS, SESSIONS] if name != "delivery"),
    }
    sender_env = {**tidings_env(database_url, tmp_path / "sender", port)}
    sender_env["TIDINGS_WORKERS"] = "delivery"
    headers = {"Authorization": f"Bearer {migrate_and_bootstrap(web_env)}"}
    procs = [await start_tidings(web_env)]
    try:
        async with (
            httpx.AsyncClient(base_url=web_env["TIDINGS_PUBLIC_URL"], headers=headers) as api,
            httpx.AsyncClient(base_url=sim_url, timeout=30) as control,
        ):
            await connect_whatsapp(api, control, sim_url, PNID, SECRET)
            # The web process ingests (its ingest worker runs)...
            await control.post(
                "/_sim/inbound",
                json={"phone_number_id": PNID, "from": "4915100000077", "text": "hello"},
            )

            async def conversation() -> list[dict[str, object]]:
                data: list[dict[str, object]] = (await api.get("/api/v1/conversations")).json()[
                    "data"
                ]
                return data

            conv_id = (await eventually(conversation, timeout=20))[0]["id"]
            # ...and queues the reply, but does not send it: its delivery worker is off.
            reply = await api.post(
                f"/api/v1/conversations/{conv_id}/messages", json={"text": "on its way"}
            )
            assert reply.status_code == 201, reply.text
            message_id = reply.json()["id"]

            async def status() -> str:
                msgs = (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]
                return str(next(m["status"] for m in msgs if m["id"] == message_id))

            await asyncio.sleep(2.0)  # the web process's pollers had their chances
            assert await status() == "queued"
            assert sim.sent(PNID) == []

            # The dedicated sending process picks it up and sends it once.
            procs.append(
                subprocess.Popen(
                    [TIDINGS, "worker"],
                    env=sender_env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

            async def sent() -> bool:
                return await status() == "sent"

            await eventually(sent, timeout=30)
            bodies = [s["body"] for s in sim.sent(PNID)]
            assert [b.get("text", {}).get("body") for b in bodies] == ["on its way"]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
