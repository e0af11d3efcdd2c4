"""Outgoing webhooks paused, changed and deleted; the time-zone list (issue 18, item 6)."""

from __future__ import annotations

import httpx

from tests.conftest import Owner, Receiver, Server
from tests.security.test_authz_matrix import make_outsiders


async def test_pause_change_delete_subscription(
    server: Server, owner: Owner, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    made = await api.post(
        "/api/v1/webhook_subscriptions", json={"url": receiver.url, "events": ["message.created"]}
    )
    assert made.status_code == 201, made.text
    sub_id = made.json()["id"]
    paused = await api.patch(f"/api/v1/webhook_subscriptions/{sub_id}", json={"active": False})
    assert paused.status_code == 200 and paused.json()["active"] is False
    assert paused.json()["secret"] is None
    listed = (await api.get("/api/v1/webhook_subscriptions")).json()
    assert [s["active"] for s in listed] == [False]
    changed = await api.patch(
        f"/api/v1/webhook_subscriptions/{sub_id}",
        json={"active": True, "events": ["message.created", "conversation.created"]},
    )
    assert changed.json()["events"] == ["message.created", "conversation.created"]
    for bad in ({"events": []}, {"events": ["nope"]}, {"url": "ftp://x"}, {"colour": 1}):
        refused = await api.patch(f"/api/v1/webhook_subscriptions/{sub_id}", json=bad)
        assert refused.status_code == 422, bad
    tokens = await make_outsiders(server, owner)
    for who, status in (("sales_agent", 403), ("other_owner", 404)):
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {tokens[who]}"}
        ) as other:
            hit = await other.patch(
                f"/api/v1/webhook_subscriptions/{sub_id}", json={"active": False}
            )
            assert hit.status_code == status
            assert (
                await other.delete(f"/api/v1/webhook_subscriptions/{sub_id}")
            ).status_code == status
    assert (await api.delete(f"/api/v1/webhook_subscriptions/{sub_id}")).status_code == 204
    assert (await api.get("/api/v1/webhook_subscriptions")).json() == []
    assert (await api.delete(f"/api/v1/webhook_subscriptions/{sub_id}")).status_code == 404


async def test_timezones(server: Server, owner: Owner, api: httpx.AsyncClient) -> None:
    zones = (await api.get("/api/v1/timezones")).json()
    assert "Europe/Paris" in zones and "America/New_York" in zones and zones == sorted(zones)
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        assert (await anonymous.get("/api/v1/timezones")).status_code == 401
