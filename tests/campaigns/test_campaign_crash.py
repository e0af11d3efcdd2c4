"""kill -9 the campaign worker mid-campaign, start it again: every recipient gets exactly one
message. The fan-out runs as a real separate process (`python -m tidings.campaigns`) against
the same database as a Tidings server whose delivery worker sends to the API simulator."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tests.campaigns.conftest import api_channel
from tests.conftest import (
    Owner,
    Server,
    eventually,
    free_port,
    make_settings,
    sandbox_headers,
    start_server,
)
from tidings.actions.admin import bootstrap
from tidings.storage.models import (
    CampaignRecipient,
    Contact,
    ContactIdentity,
    Delivery,
    Message,
)
from tidings.workers import registry as workers

pytestmark = pytest.mark.slow
TOTAL = 300


@pytest.fixture
async def bare_server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    """A server running every worker except the campaign loops (the subprocess runs those)."""
    settings = make_settings(database_url, tmp_path / "data", free_port(), run_workers=False)
    srv, uv, task = await start_server(settings)
    for name, run in workers.WORKERS.items():
        if name not in ("campaigns", "fallback"):
            srv.runtime.spawn(run(srv.runtime), name=f"worker-{name}")
    try:
        yield srv
    finally:
        uv.should_exit = True
        await asyncio.wait_for(task, 15)


def start_fanout(server: Server) -> subprocess.Popen[bytes]:
    s = server.settings
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": s.database_url,
        "TIDINGS_SECRET_KEY": s.secret_key,
        "TIDINGS_PUBLIC_URL": s.public_url,
        "TIDINGS_DATA_DIR": str(s.data_dir),
        "TIDINGS_LOG_LEVEL": "warning",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tidings.campaigns"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def test_kill_9_mid_campaign_sends_each_recipient_exactly_once(
    bare_server: Server, tmp_path: Path
) -> None:
    server = bare_server
    boot = await bootstrap(server.runtime, "owner@example.com", "correct horse battery", "T")
    owner = Owner(boot["workspace_id"], boot["agent_id"], boot["inbox_id"], boot["api_token"])
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {owner.token}"}, timeout=20
    ) as api:
        channel = await api_channel(api, server)
        async with server.runtime.db.write() as s:
            for i in range(TOTAL):
                contact = Contact(workspace_id=owner.workspace_id, name=f"C{i}", attributes={})
                s.add(contact)
                await s.flush()
                s.add(
                    ContactIdentity(
                        workspace_id=owner.workspace_id,
                        contact_id=contact.id,
                        channel_kind="api",
                        address=f"crash-{i}",
                    )
                )
        c = (
            await api.post(
                "/api/v1/campaigns",
                json={
                    "name": "Crash",
                    "content": {"text": "Once only, {{name}}"},
                    "audience": {"all_contacts": True},
                    "channel_ids": [channel["id"]],
                    "rate_per_second": 100,
                },
            )
        ).json()
        launched = (await api.post(f"/api/v1/campaigns/{c['id']}/launch")).json()
        assert launched["counts"]["total"] == TOTAL

        async def queued() -> int:
            async with server.runtime.db.read() as s:
                return int(
                    await s.scalar(
                        select(func.count())
                        .select_from(CampaignRecipient)
                        .where(CampaignRecipient.message_id.isnot(None))
                    )
                    or 0
                )

        proc = start_fanout(server)
        try:
            await eventually(lambda: _at_least(queued(), TOTAL // 4), timeout=60, interval=0.02)
            proc.send_signal(signal.SIGKILL)  # mid-campaign, no goodbye
            proc.wait()
            at_kill = await queued()
            # The kill really landed mid-campaign.
            assert TOTAL // 4 <= at_kill < TOTAL, at_kill
            proc = start_fanout(server)

            async def completed() -> bool:
                r = (await api.get(f"/api/v1/campaigns/{c['id']}")).json()
                return bool(r["state"] == "completed" and r["counts"]["read"] == TOTAL)

            await eventually(completed, timeout=90, interval=0.2)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=15)

        async with server.runtime.db.read() as s:
            messages = (
                await s.execute(
                    select(Message.id, Message.conversation_id).where(Message.direction == "out")
                )
            ).all()
            links = (
                await s.scalars(select(CampaignRecipient.message_id).order_by(CampaignRecipient.id))
            ).all()
            deliveries = await s.scalar(select(func.count()).select_from(Delivery))
        assert len(messages) == TOTAL  # nothing doubled from our side
        assert len({conv for _, conv in messages}) == TOTAL  # one per customer
        assert sorted(links) == sorted(m for m, _ in messages)  # nobody skipped
        assert deliveries == TOTAL
        async with httpx.AsyncClient(
            headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/api"
        ) as sim:
            received = (await sim.get("/_sim/received", params={"account": "acme"})).json()
        assert sorted(m["to"] for m in received) == sorted(f"crash-{i}" for i in range(TOTAL))


async def _at_least(coro: object, n: int) -> bool:
    return await coro >= n  # type: ignore[misc,operator]
