"""The no_reply timer is a row: armed by one server process, it fires in the next one after a
restart. A conversation an agent answered in time does not fire."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import select, update

from tests.automation.helpers import customer_says, settled, simulator, whatsapp_channel
from tests.conftest import Owner, Server, eventually, free_port, make_settings, start_server
from tidings.actions.admin import bootstrap
from tidings.storage.models import AutomationTimer, Conversation
from tidings.storage.types import utcnow

# Far beyond the first process's life; the test then moves the timers' due time into the past
# while no process runs (the time that passed during the restart), so nothing races a clock.
MINUTES = 10


async def test_no_reply_timer_fires_after_a_restart(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path / "data", free_port())
    srv, uv, task = await start_server(settings)
    try:
        boot = await bootstrap(srv.runtime, "owner@example.com", "correct horse battery", "T")
        api = httpx.AsyncClient(
            base_url=srv.url, headers={"Authorization": f"Bearer {boot['api_token']}"}, timeout=20
        )
        await whatsapp_channel(srv, api)
        rule = await api.post(
            "/api/v1/automation/rules",
            json={
                "name": "Waiting too long",
                "event": "no_reply",
                "minutes": MINUTES,
                "actions": [
                    {"type": "add_label", "name": "waiting"},
                    {"type": "set_priority", "priority": "urgent"},
                ],
            },
        )
        assert rule.status_code == 201, rule.text
        sim = simulator(srv)
        await customer_says(sim, "hello? is anyone there?")
        await customer_says(sim, "I need help", sender="447700900123")
        await settled(srv)
        async with srv.runtime.db.read() as s:
            convs = list((await s.scalars(select(Conversation).order_by(Conversation.id))).all())
        assert len(convs) == 2
        # An agent answers the second customer in time; the first one waits.
        answered = await api.post(
            f"/api/v1/conversations/{convs[1].id}/messages", json={"text": "Hi! How can I help?"}
        )
        assert answered.status_code == 201, answered.text
        await sim.aclose()
        await api.aclose()
    finally:
        uv.should_exit = True
        await asyncio.wait_for(task, 45)

    async with _session(database_url) as s:
        timers = list((await s.scalars(select(AutomationTimer))).all())
    assert sorted(t.state for t in timers) == ["waiting", "waiting"]
    for t in timers:  # armed for the rule's minutes after the customer's message
        assert (
            timedelta(minutes=MINUTES - 1) < t.due_at - t.created_at <= timedelta(minutes=MINUTES)
        )
    async with _session(database_url, write=True) as s:
        await s.execute(update(AutomationTimer).values(due_at=utcnow() - timedelta(seconds=1)))

    # A new process on the same database: the timers are still there and fire when due.
    settings = make_settings(database_url, tmp_path / "data", free_port())
    srv, uv, task = await start_server(settings)
    try:
        api = httpx.AsyncClient(
            base_url=srv.url, headers={"Authorization": f"Bearer {boot['api_token']}"}, timeout=20
        )

        async def fired() -> list[dict]:
            async with srv.runtime.db.read() as s:
                states = list((await s.scalars(select(AutomationTimer.state))).all())
            if "waiting" in states:
                return []
            return list((await api.get("/api/v1/conversations")).json()["data"])

        by_id = {c["id"]: c for c in await eventually(fired, timeout=60, interval=0.2)}
        await settled(srv)
        by_id = {c["id"]: c for c in (await api.get("/api/v1/conversations")).json()["data"]}
        assert by_id[convs[0].id]["labels"] == ["waiting"]
        assert by_id[convs[0].id]["priority"] == "urgent"
        assert by_id[convs[1].id]["labels"] == []
        assert by_id[convs[1].id]["priority"] == "none"
        runs = (await api.get("/api/v1/automation/runs")).json()["data"]
        assert [(r["conversation_id"], r["event"], r["state"]) for r in runs] == [
            (convs[0].id, "no_reply", "done")
        ]
        await api.aclose()
    finally:
        uv.should_exit = True
        await asyncio.wait_for(task, 45)


def _session(database_url: str, *, write: bool = False):  # type: ignore[no-untyped-def]
    from contextlib import asynccontextmanager

    from tidings.storage.db import Database

    @asynccontextmanager
    async def opened():  # type: ignore[no-untyped-def]
        db = Database(database_url)
        try:
            async with db.write() if write else db.read() as s:
                yield s
        finally:
            await db.dispose()

    return opened()


async def test_window_closing_fires_before_the_window_closes(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    rule = await api.post(
        "/api/v1/automation/rules",
        json={
            "name": "Window closing",
            "event": "window.closing",
            "minutes": 0.05,
            "actions": [{"type": "add_label", "name": "window-closing"}],
        },
    )
    assert rule.status_code == 201, rule.text
    sim = simulator(server)
    # The customer wrote 23 h 59 min 50 s ago: WhatsApp's 24-hour window closes in 10 s, so a
    # rule that wants 3 s of warning fires about 7 s from now.
    await customer_says(sim, "are you there?", timestamp=int(time.time()) - (24 * 3600 - 10))
    # A second customer wrote just now: their window closes in 24 h; nothing fires for them.
    await customer_says(sim, "hello", sender="447700900123")

    async def labelled() -> list[dict]:
        convs = (await api.get("/api/v1/conversations")).json()["data"]
        return convs if any(c["labels"] for c in convs) else []

    convs = await eventually(labelled, timeout=40, interval=0.2)
    await settled(server)
    convs = (await api.get("/api/v1/conversations")).json()["data"]
    assert sorted(c["labels"] for c in convs) == [[], ["window-closing"]]
    async with server.runtime.db.read() as s:
        states = sorted((await s.scalars(select(AutomationTimer.state))).all())
    assert states == ["fired", "waiting"]
    await sim.aclose()
