"""Business hours and auto-replies end to end with the WhatsApp simulator: the away message
reaches the customer once per conversation per closed period, the greeting once for a first
contact, and both within the channel's rules (an opted-out customer gets neither)."""

from __future__ import annotations

import httpx

from tests.automation.helpers import (
    conversations,
    customer_says,
    runs,
    settled,
    simulator,
    texts_sent,
    thread,
    whatsapp_channel,
)
from tests.conftest import Owner, Server, eventually
from tidings.storage.models import Consent

AWAY = "We are closed right now; we answer from 9:00."
HELLO = "Welcome to Acme! A person will be with you shortly."
# Closed every day (no hours at all): every message arrives outside business hours.
ALWAYS_CLOSED = {"mon": [], "tue": [], "wed": [], "thu": [], "fri": [], "sat": [], "sun": []}
ALWAYS_OPEN = {d: [["00:00", "24:00"]] for d in ALWAYS_CLOSED}


async def set_hours(api: httpx.AsyncClient, inbox_id: int, weekly: dict, **extra: object) -> dict:
    resp = await api.put(
        f"/api/v1/inboxes/{inbox_id}/business_hours",
        json={"timezone": "Europe/Paris", "weekly": weekly, **extra},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_away_message_once_per_conversation_and_greeting_once_per_contact(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    hours = await set_hours(
        api,
        owner.inbox_id,
        ALWAYS_CLOSED,
        away_enabled=True,
        away_message=AWAY,
        greeting_enabled=True,
        greeting_message=HELLO,
    )
    assert hours["open_now"] is False and hours["next_opening"] is None
    sim = simulator(server)
    await customer_says(sim, "hello, anyone there?")
    await customer_says(sim, "hello??")
    await customer_says(sim, "I'll wait")
    await settled(server)
    await sent_exactly(sim, [HELLO, AWAY])

    conv = (await conversations(api))[0]
    messages = await thread(api, conv["id"])
    automated = [m for m in messages if m["direction"] == "out" and m["kind"] == "text"]
    assert sorted(m["body"] for m in automated) == sorted([HELLO, AWAY])
    assert all(m["sender_agent_id"] is None for m in automated)
    # The customer's messages are still unread for the agents: an auto-reply is not an answer.
    assert conv["unread_count"] == 3
    logged = await runs(api, conversation_id=conv["id"])
    assert sorted((r["kind"], r["state"]) for r in logged) == [
        ("away", "done"),
        ("greeting", "done"),
    ]

    # A new conversation of the same contact: the away message again (a new conversation),
    # but no greeting (not a first contact any more).
    resolved = await api.patch(f"/api/v1/conversations/{conv['id']}", json={"status": "resolved"})
    assert resolved.status_code == 200
    await customer_says(sim, "me again")
    await settled(server)
    await sent_exactly(sim, [HELLO, AWAY, AWAY])

    # Inside business hours: no away message.
    await set_hours(api, owner.inbox_id, ALWAYS_OPEN, away_enabled=True, away_message=AWAY)
    await customer_says(sim, "new customer here", sender="447700900123")
    await settled(server)
    await sent_exactly(sim, [HELLO, AWAY, AWAY])
    await sim.aclose()


async def test_auto_replies_respect_consent(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    sim = simulator(server)
    await customer_says(sim, "hi")
    await settled(server)
    conv = (await conversations(api))[0]
    # The customer opted out of WhatsApp messages (as a provider's opt-out report or an SMS
    # keyword would record it; there is no API to opt someone out by hand).
    async with server.runtime.db.write() as s:
        s.add(
            Consent(
                workspace_id=owner.workspace_id,
                contact_id=conv["contact_id"],
                channel_kind="whatsapp",
                purpose="service",
                status="opted_out",
                source="provider",
            )
        )
    await set_hours(api, owner.inbox_id, ALWAYS_CLOSED, away_enabled=True, away_message=AWAY)
    await customer_says(sim, "are you open?")
    await settled(server)
    assert AWAY not in await texts_sent(sim)
    logged = await runs(api, conversation_id=conv["id"])
    away = [r for r in logged if r["kind"] == "away"]
    assert len(away) == 1
    assert away[0]["results"][0]["outcome"] == "refused"
    assert away[0]["results"][0]["code"] == "opted_out"
    system = [m["body"] for m in await thread(api, conv["id"]) if m["kind"] == "system"]
    assert any(s.startswith("Away message not sent: This customer opted out") for s in system)
    await sim.aclose()


async def test_business_hours_validation(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    url = f"/api/v1/inboxes/{owner.inbox_id}/business_hours"
    cases = [
        ({"timezone": "Mars/Olympus", "weekly": {}}, "timezone"),
        ({"timezone": "UTC", "weekly": {"mon": [["17:00", "09:00"]]}}, "weekly.mon[0]"),
        (
            {"timezone": "UTC", "weekly": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}},
            "overlap",
        ),
        ({"timezone": "UTC", "weekly": {"funday": []}}, "weekly"),
        ({"timezone": "UTC", "weekly": {"mon": [["9am", "5pm"]]}}, "weekly.mon[0]"),
        ({"timezone": "UTC", "weekly": {}, "holidays": ["christmas"]}, "holidays[0]"),
        ({"timezone": "UTC", "weekly": {}, "away_enabled": True}, "away_message"),
        ({"timezone": "UTC", "weekly": {}, "colour": "red"}, "unknown field"),
    ]
    for body, field in cases:
        resp = await api.put(url, json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert field in resp.json()["error"]["message"], (body, resp.text)
    assert (await api.get(url)).json()["configured"] is False
    assert (await api.get("/api/v1/inboxes/999999/business_hours")).status_code == 404
    ok = await api.put(
        url,
        json={
            "timezone": "America/New_York",
            "weekly": {
                "mon": [["09:00", "12:00"], ["13:00", "17:30"]],
                "sat": [["10:00", "24:00"]],
            },
            "holidays": ["2026-12-25"],
        },
    )
    assert ok.status_code == 200, ok.text
    got = (await api.get(url)).json()
    assert got["configured"] is True
    assert got["weekly"]["mon"] == [["09:00", "12:00"], ["13:00", "17:30"]]
    assert got["weekly"]["sat"] == [["10:00", "24:00"]]
    assert got["weekly"]["sun"] == []
    assert got["holidays"] == ["2026-12-25"]
    assert (await api.delete(url)).status_code == 204
    assert (await api.get(url)).json()["configured"] is False


async def sent_exactly(sim: httpx.AsyncClient, expected: list[str]) -> None:
    """The simulated provider has received exactly `expected` (in any order). `settled` says
    the rules ran and queued their replies; sending them is the delivery worker's next step."""

    async def check() -> list[str] | None:
        got = sorted(await texts_sent(sim))
        return got if got == sorted(expected) else None

    await eventually(check)
