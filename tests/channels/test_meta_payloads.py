"""Issue #16 items on Messenger/Instagram payloads, through a real signed webhook and the API:
timestamps in seconds (the App Dashboard's test sample) date the message right and leave the
window open; page-level events with no sender (policy enforcement) reach the channel's health
and `tidings doctor` instead of failing."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.channels.test_meta_fixtures import FIXTURES, IG_ID, _channel, _settled, _thread
from tests.conftest import Owner, Server, tidings_env
from tests.scale.test_doctor import doctor_async
from tidings.channels.meta_common import sign, timestamp

APP_SECRET = "meta-app-secret-for-fixtures"


async def _post_raw(webhook: str, doc: Any) -> None:
    body = orjson.dumps(doc)
    async with httpx.AsyncClient(timeout=20) as client:
        resp = await client.post(
            webhook,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign(APP_SECRET, body),
            },
        )
    assert resp.status_code == 200, resp.text


def _fixture(provider: str, name: str) -> Any:
    return orjson.loads((FIXTURES / provider / f"{name}.json").read_bytes())


def test_timestamp_unit_is_decided_by_magnitude() -> None:
    when = datetime(2026, 12, 7, 1, 0, 0, tzinfo=UTC)
    seconds = int(when.timestamp())
    for value in (seconds, seconds * 1000, str(seconds), str(seconds * 1000), float(seconds)):
        assert timestamp(value) == when, value
    assert timestamp(f"{seconds}.5") == datetime(2026, 12, 7, 1, 0, 0, 500000, tzinfo=UTC)
    for bad in (None, True, "", "soon", "-1", 0, -5, float("nan"), [seconds], "١٢٣"):
        assert timestamp(bad) is None, bad


async def test_seconds_timestamp_dates_the_message_and_a_reply_is_accepted(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """The dashboard sample's shape: `timestamp` a string of seconds, `entry.time` seconds.
    Read as milliseconds it would date the message in January 1970, the 24-hour window would
    count as closed, and the agent's immediate reply would be refused 422 window_closed."""
    channel = await _channel(server, api, "messenger")
    doc = _fixture("messenger", "dashboard_sample")
    now = int(time.time())
    doc["entry"][0]["time"] = now
    doc["entry"][0]["messaging"][0]["timestamp"] = str(now)
    await _post_raw(channel["webhook_url"], doc)
    events = await _settled(api, 1)
    assert [(e["state"], e["error"]) for e in events] == [("done", None)]

    [message] = await _thread(api)
    sent_at = datetime.fromisoformat(message["sent_at"])
    assert abs(sent_at.timestamp() - now) < 2, message["sent_at"]
    conv = (await api.get("/api/v1/conversations")).json()["data"][0]
    reply = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hello, how can we help?"}
    )
    assert reply.status_code == 201, reply.text


async def test_policy_enforcement_shows_in_channel_health_and_doctor(
    server: Server, owner: Owner, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    channel = await _channel(server, api, "messenger")
    doc = _fixture("messenger", "policy_enforcement")
    now_ms = int(time.time() * 1000)
    doc["entry"][0]["time"] = now_ms
    doc["entry"][0]["messaging"][0]["timestamp"] = now_ms
    await _post_raw(channel["webhook_url"], doc)
    events = await _settled(api, 1)
    # Not a failed event that can never be replayed: done, and nothing in any inbox.
    assert [(e["state"], e["error"]) for e in events] == [("done", None)]
    assert (await api.get("/api/v1/conversations")).json()["data"] == []

    [row] = [c for c in (await api.get("/api/v1/channels")).json() if c["id"] == channel["id"]]
    health = row["health"]
    assert health["notice_severe"] is True
    assert health["notice"].startswith("Messenger blocked this channel's messaging: The bot")
    setup = (await api.get(f"/api/v1/admin/channels/{channel['id']}/setup")).json()
    assert setup["health"]["notice"] == health["notice"]

    env = tidings_env(server.settings.database_url, tmp_path, server.settings.port)
    env["TIDINGS_SECRET_KEY"] = server.settings.secret_key
    code, out = await doctor_async(env)
    assert code == 1, out
    [line] = [ln for ln in out.splitlines() if f"channel {channel['id']} " in ln and "notice" in ln]
    assert line.startswith("FAIL") and "blocked this channel's messaging" in line

    # The apps' roles change meanwhile: a harmless notice on another topic, which replaced
    # the block on the channel's health.
    roles = _fixture("messenger", "app_roles")
    roles["entry"][0]["time"] = now_ms + 2000
    roles["entry"][0]["messaging"][0]["timestamp"] = now_ms + 2000
    await _post_raw(channel["webhook_url"], roles)
    await _settled(api, 2)
    [row] = [c for c in (await api.get("/api/v1/channels")).json() if c["id"] == channel["id"]]
    assert row["health"]["notice"] == health["notice"]
    assert row["health"]["notice_severe"] is True

    # Meta lifts the block later: the newer notice replaces it and is no longer severe.
    later = {
        "object": "page",
        "entry": [
            {
                "id": doc["entry"][0]["id"],
                "time": now_ms + 5000,
                "messaging": [
                    {
                        "recipient": {"id": doc["entry"][0]["id"]},
                        "timestamp": now_ms + 5000,
                        "policy_enforcement": {"action": "unblock"},
                    }
                ],
            }
        ],
    }
    await _post_raw(channel["webhook_url"], later)
    await _settled(api, 3)
    [row] = [c for c in (await api.get("/api/v1/channels")).json() if c["id"] == channel["id"]]
    assert row["health"]["notice"] == "Messenger lifted its block on this channel."
    assert row["health"]["notice_severe"] is False


async def test_dashboard_sample_in_its_changes_form_is_a_message_dated_now(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """The App Dashboard's "Test" button posts the event as `changes[]` (`field: messages`,
    the element as `value`) with a string of seconds; it was dropped as a comment change. For
    this account it is a message like any other, dated by magnitude, and a reply is accepted.
    As the dashboard sends it (entry id "0", a made-up sender) it is no account's: nothing."""
    channel = await _channel(server, api, "instagram")
    doc = _fixture("instagram", "reference/dashboard_sample")
    await _post_raw(channel["webhook_url"], doc)
    now = int(time.time())
    entry = doc["entry"][0]
    entry["id"], entry["time"] = IG_ID, now
    value = entry["changes"][0]["value"]
    value["recipient"]["id"], value["timestamp"] = IG_ID, str(now)
    await _post_raw(channel["webhook_url"], doc)
    events = await _settled(api, 1)
    assert [(e["state"], e["error"]) for e in events] == [("done", None)]

    [message] = await _thread(api)
    assert (message["direction"], message["kind"], message["body"]) == ("in", "text", "random_text")
    assert abs(datetime.fromisoformat(message["sent_at"]).timestamp() - now) < 2, message
    conv = (await api.get("/api/v1/conversations")).json()["data"][0]
    reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hi!"})
    assert reply.status_code == 201, reply.text
