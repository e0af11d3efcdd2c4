"""Channel edit/disable/delete/test and the profile and invite API (issue 18)."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import func, select

from tests.conftest import Owner, Server, eventually
from tests.core.test_ingest import api_channel, msg, post_signed
from tests.security.test_authz_matrix import make_outsiders
from tests.security.test_login_passwords import attempt
from tidings.storage.models import Channel, Conversation, Message


async def test_edit_disable_delete_channel(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel_id = await api_channel(api)
    await post_signed(server, channel_id, {"messages": [msg("m1", "vip", "hi", 1_750_000_000)]})

    async def stored() -> int:
        async with server.runtime.db.read() as s:
            return int(await s.scalar(select(func.count()).select_from(Message)) or 0)

    await eventually(stored)

    renamed = await api.patch(
        f"/api/v1/channels/{channel_id}", json={"name": "Website", "config": {"secret": ""}}
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Website"
    # The secret left empty kept its value: a signed webhook still passes.
    again = await post_signed(
        server, channel_id, {"messages": [msg("m2", "vip", "still here", 1_750_000_001)]}
    )
    assert again.status_code == 200
    bad = await api.patch(f"/api/v1/channels/{channel_id}", json={"config": {"secret": "short"}})
    assert bad.status_code == 422
    assert bad.json()["error"]["message"].startswith("config.secret:")
    empty = await api.patch(f"/api/v1/channels/{channel_id}", json={"name": "  "})
    assert empty.status_code == 422 and empty.json()["error"]["message"].startswith("name:")
    assert (await api.patch("/api/v1/channels/99999", json={"name": "x"})).status_code == 404

    impact = (await api.get(f"/api/v1/channels/{channel_id}/impact")).json()
    assert impact["conversations"] == 1 and impact["messages"] == 2
    assert "stay" in impact["on_delete"]

    tested = (await api.post(f"/api/v1/channels/{channel_id}/test")).json()
    assert tested["ok"] is None and tested["message"]

    off = await api.post(f"/api/v1/channels/{channel_id}/disable")
    assert off.status_code == 200 and off.json()["active"] is False
    on = await api.post(f"/api/v1/channels/{channel_id}/enable")
    assert on.json()["active"] is True

    gone = await api.delete(f"/api/v1/channels/{channel_id}")
    assert gone.status_code == 204
    assert (await api.get(f"/api/v1/channels/{channel_id}")).status_code == 404
    async with server.runtime.db.read() as s:
        assert await s.get(Channel, channel_id) is None
        assert await s.scalar(select(func.count()).select_from(Conversation)) == 1
        assert await s.scalar(select(func.count()).select_from(Message)) == 2
    assert (await api.delete(f"/api/v1/channels/{channel_id}")).status_code == 404


async def test_channel_admin_access(server: Server, owner: Owner, api: httpx.AsyncClient) -> None:
    channel_id = await api_channel(api)
    tokens = await make_outsiders(server, owner)
    expected = {"sales_agent": 403, "other_owner": 404}
    for who, status in expected.items():
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {tokens[who]}"}
        ) as other:
            calls = [
                other.patch(f"/api/v1/channels/{channel_id}", json={"name": "x"}),
                other.get(f"/api/v1/channels/{channel_id}/impact"),
                other.post(f"/api/v1/channels/{channel_id}/disable"),
                other.post(f"/api/v1/channels/{channel_id}/test"),
                other.delete(f"/api/v1/channels/{channel_id}"),
            ]
            for call in calls:
                assert (await call).status_code == status
    still = (await api.get(f"/api/v1/channels/{channel_id}")).json()
    assert still["name"] == "Ingest" and still["active"] is True


async def test_profile_and_invite(server: Server, owner: Owner, api: httpx.AsyncClient) -> None:
    me = (await api.get("/api/v1/me/profile")).json()
    assert me["notify"] == {
        "mentions": True,
        "assigned": True,
        "replies": True,
        "desktop": True,
        "sound": True,
    }
    changed = await api.patch(
        "/api/v1/me/profile", json={"name": "Olive", "notify": {"sound": False}}
    )
    assert changed.status_code == 200
    assert changed.json()["name"] == "Olive" and changed.json()["notify"]["sound"] is False
    assert (await api.get("/api/v1/me/profile")).json()["notify"]["mentions"] is True
    assert (await api.patch("/api/v1/me/profile", json={"name": " "})).status_code == 422
    bad = await api.patch("/api/v1/me/profile", json={"notify": {"pigeons": True}})
    assert bad.status_code == 422

    invited = await api.post(
        "/api/v1/admin/agents/invite",
        json={"email": "New@Example.com", "name": "Nia", "inboxes": [owner.inbox_id]},
    )
    assert invited.status_code == 201, invited.text
    body = invited.json()
    assert (
        body["agent"]["email"] == "new@example.com"
        and "/reset-password?token=" in body["invite_url"]
    )
    dup = await api.post(
        "/api/v1/admin/agents/invite", json={"email": "new@example.com", "name": "Nia"}
    )
    assert dup.status_code == 409
    assert (
        await api.post(
            "/api/v1/admin/agents/invite",
            json={"email": "x@example.com", "name": "X", "inboxes": [999]},
        )
    ).status_code == 422

    # The invited agent cannot sign in until they choose a password on the link.
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as browser:
        assert (await attempt(browser, "new@example.com", "", "10.0.0.9")).status_code == 401
        form = await browser.get(body["invite_url"])
        assert form.status_code == 200 and "new@example.com" in form.text
        token = re.search(r'name="token" value="([^"]+)"', form.text)
        assert token is not None
        chosen = await browser.post(
            "/reset-password",
            data={
                "token": token.group(1),
                "new_password": "a brand new secret",
                "new_password_again": "a brand new secret",
            },
        )
        assert chosen.status_code == 303
        signed = await attempt(browser, "new@example.com", "a brand new secret", "10.0.0.9")
        assert signed.status_code == 303 and signed.headers["location"] == "/inbox"

    tokens = await make_outsiders(server, owner)
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {tokens['sales_agent']}"}
    ) as agent:
        refused = await agent.post(
            "/api/v1/admin/agents/invite", json={"email": "y@example.com", "name": "Y"}
        )
        assert refused.status_code == 403
        mine = await agent.patch("/api/v1/me/profile", json={"name": "Sal"})
        assert mine.status_code == 200 and mine.json()["name"] == "Sal"
    assert (await api.get("/api/v1/me/profile")).json()["name"] == "Olive"
