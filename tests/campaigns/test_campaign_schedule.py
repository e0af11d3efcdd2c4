"""Scheduling and quiet hours through the Twilio simulator, on a controlled clock.

The campaign loop runs in its own `Runtime` (a worker with no memory of the previous one) with
a clock the test moves: a scheduled campaign does not start before its time, recipients inside
quiet hours in their own time zone (the phone number's region, or a `timezone` column) are held
until the window opens, and both decisions survive replacing the worker. The server runs every
other worker (delivery, ingest) for real.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    Owner,
    Server,
    eventually,
    free_port,
    make_settings,
    start_server,
)
from tests.factories import simulator, twilio_channel
from tidings.campaigns import fanout
from tidings.config import Settings
from tidings.ratelimit import channel_rate
from tidings.runtime import Runtime
from tidings.workers import registry as workers


class FakeClock:
    """A clock that moves only when told; counts reads so a test knows the loop has looked."""

    def __init__(self, at: datetime) -> None:
        self.at = at
        self.reads = 0

    def __call__(self) -> datetime:
        self.reads += 1
        return self.at


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    """Every worker but the campaign loop, which each test runs on its own clock."""
    settings = make_settings(database_url, tmp_path / "data", free_port(), run_workers=False)
    srv, uv, task = await start_server(settings)
    for name, run in workers.WORKERS.items():
        if name != "campaigns":
            srv.runtime.spawn(run(srv.runtime), name=f"worker-{name}")
    try:
        yield srv
    finally:
        uv.should_exit = True
        await asyncio.wait_for(task, 45)


@asynccontextmanager
async def campaign_worker(settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    """A campaign worker as a separate runtime: stopping it forgets everything in memory."""
    rt = Runtime(settings)
    await rt.start()
    rt.spawn(fanout.run(rt, clock), name="worker-campaigns-under-test")
    try:
        yield rt
    finally:
        await rt.stop()


async def looked(clock: FakeClock, times: int) -> None:
    """Wait until the loop has read the clock `times` more times (several full passes)."""
    target = clock.reads + times
    await eventually(lambda: _at_least(clock, target), timeout=30)


async def _at_least(clock: FakeClock, target: int) -> bool:
    return clock.reads >= target


async def sent_to(server: Server) -> list[str]:
    async with simulator(server, "twilio") as tw:
        data = (await tw.get("/_sim/sent")).json()
    return sorted(dict(m["params"])["To"] for m in data)


async def recipients(api: httpx.AsyncClient, campaign_id: int) -> dict[str, dict[str, Any]]:
    data = (await api.get(f"/api/v1/campaigns/{campaign_id}/recipients")).json()["data"]
    return {r["address"]: r for r in data}


async def make_campaign(
    api: httpx.AsyncClient, channel_id: int, csv: bytes, **fields: Any
) -> dict[str, Any]:
    resp = await api.post(
        "/api/v1/campaigns",
        json={
            "name": f"c-{secrets.token_hex(3)}",
            "content": {"text": "Doors open at nine"},
            "channel_ids": [channel_id],
            **fields,
        },
    )
    assert resp.status_code == 201, resp.text
    campaign: dict[str, Any] = resp.json()
    up = await api.post(
        f"/api/v1/campaigns/{campaign['id']}/audience/csv",
        content=csv,
        headers={"Content-Type": "text/csv"},
    )
    assert up.status_code == 200, up.text
    assert up.json()["invalid"] == []
    return campaign


async def test_scheduled_campaign_waits_for_its_time_across_a_worker_restart(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    sms = await twilio_channel(api, server)
    start = datetime.now(UTC)
    at = start + timedelta(hours=3)
    c = await make_campaign(
        api,
        sms["id"],
        b"phone\n+14155550124\n+14155550125\n",
        scheduled_at=at.isoformat(),
    )
    launched = (await api.post(f"/api/v1/campaigns/{c['id']}/launch")).json()
    assert launched["state"] == "scheduled" and launched["counts"]["pending"] == 2

    clock = FakeClock(start + timedelta(hours=2, minutes=59))
    async with campaign_worker(server.settings, clock):
        await looked(clock, 6)
        c1 = (await api.get(f"/api/v1/campaigns/{c['id']}")).json()
        assert c1["state"] == "scheduled"
        assert c1["counts"]["pending"] == 2 and c1["counts"]["queued"] == 0
    assert await sent_to(server) == []

    # A new worker (nothing carried over in memory) at the scheduled time sends both, once.
    clock.at = at
    async with campaign_worker(server.settings, clock):

        async def both() -> list[str] | None:
            got = await sent_to(server)
            return got if len(got) == 2 else None

        assert await eventually(both, timeout=30) == ["+14155550124", "+14155550125"]

        async def completed() -> bool:
            c2 = (await api.get(f"/api/v1/campaigns/{c['id']}")).json()
            return bool(c2["state"] == "completed")

        await eventually(completed, timeout=30)
    assert await sent_to(server) == ["+14155550124", "+14155550125"]


BERLIN = "+4915112345678"  # Europe/Berlin from its prefix
TOKYO = "+81312345678"  # Asia/Tokyo from its prefix
PARIS_IN_TOKYO = "+33612345678"  # Europe/Paris by prefix, but its row says Asia/Tokyo
LA_IN_BERLIN = "+14155550124"  # America/Los_Angeles by prefix, its row says Europe/Berlin


async def test_quiet_hours_hold_recipients_in_their_zone_until_the_window_opens(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    sms = await twilio_channel(api, server)
    csv = (
        "phone,timezone\n"
        f"{BERLIN},\n"
        f"{TOKYO},\n"
        f"{PARIS_IN_TOKYO},Asia/Tokyo\n"
        f"{LA_IN_BERLIN},Europe/Berlin\n"
    ).encode()
    c = await make_campaign(api, sms["id"], csv, quiet_hours={"start": "21:00", "end": "08:00"})
    launched = (await api.post(f"/api/v1/campaigns/{c['id']}/launch")).json()
    assert launched["state"] == "running"

    # 02:00 UTC in January: 03:00 in Berlin (quiet), 11:00 in Tokyo (not), 18:00 in LA (not,
    # but that row lives in Berlin).
    night = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)
    clock = FakeClock(night)
    async with campaign_worker(server.settings, clock):

        async def tokyo_sent() -> list[str] | None:
            got = await sent_to(server)
            return got if len(got) == 2 else None

        assert await eventually(tokyo_sent, timeout=30) == sorted([TOKYO, PARIS_IN_TOKYO])
        await looked(clock, 6)
        held = await recipients(api, c["id"])
        berlin_opens = datetime(2026, 1, 15, 7, 0, tzinfo=UTC)  # 08:00 in Berlin (CET)
        for number in (BERLIN, LA_IN_BERLIN):
            assert held[number]["state"] == "pending"
            assert datetime.fromisoformat(held[number]["not_before"]) == berlin_opens
        assert held[TOKYO]["state"] != "pending" and held[TOKYO]["not_before"] is None
    assert len(await sent_to(server)) == 2

    # One minute before the window opens, a fresh worker still holds them ...
    clock.at = berlin_opens - timedelta(minutes=1)
    async with campaign_worker(server.settings, clock):
        await looked(clock, 6)
        still = await recipients(api, c["id"])
        assert [still[n]["state"] for n in (BERLIN, LA_IN_BERLIN)] == ["pending", "pending"]
    assert len(await sent_to(server)) == 2

    # ... and once it opens, another fresh worker sends them, each exactly once.
    clock.at = berlin_opens
    async with campaign_worker(server.settings, clock):

        async def everyone() -> list[str] | None:
            got = await sent_to(server)
            return got if len(got) == 4 else None

        assert await eventually(everyone, timeout=30) == sorted(
            [BERLIN, TOKYO, PARIS_IN_TOKYO, LA_IN_BERLIN]
        )

        async def completed() -> bool:
            c2 = (await api.get(f"/api/v1/campaigns/{c['id']}")).json()
            return bool(c2["state"] == "completed")

        await eventually(completed, timeout=30)
    assert len(await sent_to(server)) == 4


async def test_whatsapp_throughput_tier_is_a_channel_setting_the_bucket_uses(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    base = {
        "phone_number_id": "100000000000555",
        "access_token": "EAAG-token",
        "app_secret": "wa-app-secret",
        "verify_token": "verify-me",
        "api_base_url": f"{server.url}/sandbox/whatsapp",
    }
    default = await api.post(
        "/api/v1/channels", json={"kind": "whatsapp", "name": "WA default", "config": base}
    )
    assert default.status_code == 201, default.text
    upgraded = await api.post(
        "/api/v1/channels",
        json={
            "kind": "whatsapp",
            "name": "WA upgraded",
            "config": {**base, "phone_number_id": "100000000000556", "messages_per_second": 1000},
        },
    )
    assert upgraded.status_code == 201, upgraded.text
    too_fast = await api.post(
        "/api/v1/channels",
        json={
            "kind": "whatsapp",
            "name": "WA too fast",
            "config": {**base, "phone_number_id": "100000000000557", "messages_per_second": 1001},
        },
    )
    assert too_fast.status_code == 422, too_fast.text
    names = [c["name"] for c in (await api.get("/api/v1/channels")).json()]
    assert "WA too fast" not in names

    sms = await twilio_channel(api, server)
    rates = {}
    for made in (default.json(), upgraded.json(), sms):
        info = await server.runtime.channels.get(made["id"])
        assert info is not None
        rates[made["name"]] = channel_rate(info.adapter.capabilities, info.config)
    assert rates == {"WA default": 80.0, "WA upgraded": 1000.0, "SMS": 10.0}
