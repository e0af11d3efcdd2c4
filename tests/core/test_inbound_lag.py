"""Backpressure is visible (issue 14, item 5): every inbound event is stored in a lane (receipts
in `status`, everything else in `customer`), and the lag per lane — the age of the oldest due,
unprocessed event and how many wait — shows in /metrics, the agent API and `tidings doctor`.

The backlog is real: signed webhooks posted to a server whose ingest worker is not running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import func, select, update

from tests.conftest import Owner, Server, free_port, make_settings, serving, tidings_env
from tests.core.test_ingest import api_channel, msg, post_signed
from tests.scale.test_doctor import doctor_async
from tests.scale.test_health_metrics import metric
from tidings.actions.admin import bootstrap
from tidings.channels.base import WebhookRequest
from tidings.channels.meta_common.messaging import MESSENGER
from tidings.channels.meta_common.messaging import split as meta_split
from tidings.channels.twilio.webhook import split as twilio_split
from tidings.channels.vonage.webhook import split as vonage_split
from tidings.channels.whatsapp.webhook import split as whatsapp_split
from tidings.ingest.lag import LagGauge, measure
from tidings.ingest.worker import process_batch
from tidings.storage.models import InboundEvent
from tidings.storage.types import utcnow


@pytest.fixture
async def idle_server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    """A server that stores webhooks but runs no worker: whatever arrives stays pending."""
    settings = make_settings(database_url, tmp_path / "data", free_port(), run_workers=False)
    async with serving(settings) as srv:
        yield srv


@pytest.fixture
async def idle_owner(idle_server: Server) -> Owner:
    result = await bootstrap(idle_server.runtime, "owner@example.com", "correct horse battery", "T")
    return Owner(
        result["workspace_id"], result["agent_id"], result["inbox_id"], result["api_token"]
    )


@pytest.fixture
async def idle_api(idle_server: Server, idle_owner: Owner) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=idle_server.url,
        headers={"Authorization": f"Bearer {idle_owner.token}"},
        timeout=20,
    ) as client:
        yield client


def status(mid: str, state: str) -> dict[str, object]:
    return {"id": mid, "status": state, "timestamp": 1_750_000_100}


async def backlog(server: Server, api: httpx.AsyncClient) -> int:
    """3 customer messages and 5 receipts, acknowledged and left unprocessed."""
    channel_id = await api_channel(api)
    messages = [msg(f"m{i}", f"user{i}", f"hello {i}", 1_750_000_000 + i) for i in range(3)]
    receipts = [status(f"out-{i}", "delivered") for i in range(5)]
    resp = await post_signed(server, channel_id, {"messages": messages, "statuses": receipts})
    assert resp.status_code == 200, resp.text
    return channel_id


async def age(server: Server, lane: str, seconds: float) -> None:
    """Make a lane's pending events `seconds` older (as if the worker had been behind)."""
    async with server.runtime.db.write() as s:
        await s.execute(
            update(InboundEvent)
            .where(InboundEvent.lane == lane, InboundEvent.state == "pending")
            .values(next_attempt_at=utcnow() - timedelta(seconds=seconds))
        )


async def test_webhooks_are_stored_in_lanes_and_the_gauge_reads_them(
    idle_server: Server, idle_owner: Owner, idle_api: httpx.AsyncClient
) -> None:
    await backlog(idle_server, idle_api)
    async with idle_server.runtime.db.read() as s:
        rows = await s.execute(select(InboundEvent.lane, func.count()).group_by(InboundEvent.lane))
        lanes = {str(lane): int(n) for lane, n in rows}
    assert lanes == {"customer": 3, "status": 5}

    await asyncio.sleep(1.1)
    now = await measure(idle_server.runtime.db)
    assert now["customer"].pending == 3 and now["status"].pending == 5
    assert 1.0 <= now["customer"].seconds < 30 and 1.0 <= now["status"].seconds < 30

    await age(idle_server, "status", 40)
    now = await measure(idle_server.runtime.db)
    assert 40 <= now["status"].seconds < 70
    assert now["customer"].seconds < 30  # lanes are measured apart

    # An event waiting out a retry backoff is not late until it is due again.
    async with idle_server.runtime.db.write() as s:
        await s.execute(
            update(InboundEvent)
            .where(InboundEvent.lane == "customer")
            .values(next_attempt_at=utcnow() + timedelta(seconds=60))
        )
    now = await measure(idle_server.runtime.db)
    assert now["customer"].pending == 0 and now["customer"].seconds == 0.0

    # Processing drains the gauge.
    async with idle_server.runtime.db.write() as s:
        await s.execute(update(InboundEvent).values(next_attempt_at=utcnow()))
    while await process_batch(idle_server.runtime):
        pass
    now = await measure(idle_server.runtime.db)
    assert now["customer"].pending == 0 and now["status"].pending == 0
    assert now["customer"].seconds == 0.0 and now["status"].seconds == 0.0


async def test_the_gauge_queries_at_most_once_a_second(
    idle_server: Server, idle_owner: Owner, idle_api: httpx.AsyncClient
) -> None:
    now = [0.0]  # a clock the test moves, so a slow machine cannot expire the cache early
    gauge = LagGauge(idle_server.runtime.db, clock=lambda: now[0])
    first = await gauge.read()
    assert first["customer"].pending == 0
    await backlog(idle_server, idle_api)
    now[0] = 0.99
    reads = await asyncio.gather(*(gauge.read() for _ in range(20)))
    assert all(r is first for r in reads)  # cached: no query per caller
    now[0] = 1.0
    assert (await gauge.read())["customer"].pending == 3


async def test_metrics_and_the_api_show_both_lanes(
    idle_server: Server, idle_owner: Owner, idle_api: httpx.AsyncClient
) -> None:
    await backlog(idle_server, idle_api)
    await age(idle_server, "customer", 12)
    await age(idle_server, "status", 30)
    await asyncio.sleep(1.05)  # past the per-process cache
    text = (await idle_api.get("/metrics")).text
    assert 12 <= metric(text, "tidings_inbound_lag_seconds", lane="customer") < 40
    assert 30 <= metric(text, "tidings_inbound_lag_seconds", lane="status") < 60
    assert metric(text, "tidings_inbound_pending", lane="customer") == 3
    assert metric(text, "tidings_inbound_pending", lane="status") == 5

    lag = (await idle_api.get("/api/v1/inbound/lag")).json()
    assert lag["warn_seconds"] == 5
    assert lag["customer"]["pending"] == 3 and 12 <= lag["customer"]["seconds"] < 40
    assert lag["status"]["pending"] == 5  # the owner is an admin: both lanes


async def test_doctor_warns_when_a_lane_is_behind(
    idle_server: Server, idle_owner: Owner, idle_api: httpx.AsyncClient, tmp_path: Path
) -> None:
    env = tidings_env(idle_server.settings.database_url, tmp_path, idle_server.settings.port)
    env["TIDINGS_SECRET_KEY"] = idle_server.settings.secret_key
    code, out = await doctor_async(env)
    assert "ok    inbound lag" in out, out
    assert "customer 0.0 s (0 waiting)" in out

    await backlog(idle_server, idle_api)
    await age(idle_server, "customer", 20)
    code, out = await doctor_async(env)
    line = next(x for x in out.splitlines() if "inbound lag" in x)
    assert line.startswith("warn"), out
    assert "customer 2" in line and "(3 waiting)" in line and "(5 waiting)" in line
    assert code == 0, out  # a warning, not a failure: the installation works, it is behind


def test_split_tells_receipts_from_what_customers_do() -> None:
    wa = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "waba",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messages": [{"id": "wamid.in", "from": "1", "timestamp": "1"}],
                            "statuses": [{"id": "wamid.out", "status": "read", "timestamp": "2"}],
                        },
                    }
                ],
            }
        ],
    }
    assert {e.key: e.lane for e in whatsapp_split(orjson.dumps(wa))} == {
        "msg:wamid.in": "customer",
        "status:wamid.out:read": "status",
    }
    fb = {
        "object": "page",
        "entry": [
            {
                "id": "page-1",
                "time": 1,
                "messaging": [
                    {"sender": {"id": "u"}, "message": {"mid": "m.1", "text": "hi"}},
                    {"sender": {"id": "u"}, "delivery": {"mids": ["m.2"], "watermark": 5}},
                    {"sender": {"id": "u"}, "read": {"watermark": 6}},
                    {"sender": {"id": "u"}, "reaction": {"mid": "m.2", "action": "react"}},
                ],
            }
        ],
    }
    lanes = [e.lane for e in meta_split(orjson.dumps(fb), MESSENGER, "page-1")]
    assert lanes == ["customer", "status", "status", "customer"]

    def twilio(**fields: str) -> str:
        body = "&".join(f"{k}={v}" for k, v in fields.items()).encode()
        headers = {"content-type": "application/x-www-form-urlencoded"}
        req = WebhookRequest("POST", "https://x/t", headers, {}, body)
        [event] = twilio_split(req, utcnow())
        return event.lane

    assert twilio(MessageSid="SM1", MessageStatus="delivered") == "status"
    assert twilio(MessageSid="SM2", From="%2B1555", Body="hi") == "customer"

    def vonage(**params: str) -> str:
        [event] = vonage_split(WebhookRequest("GET", "https://x/v", {}, params, b""))
        return event.lane

    assert vonage(messageId="V1", status="delivered", **{"err-code": "0"}) == "status"
    assert vonage(messageId="V2", msisdn="447700900001", text="hi") == "customer"
