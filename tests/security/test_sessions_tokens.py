"""Sessions and API tokens can be revoked, are scoped and may expire (issue 15, item 4).

Decisions tested here (docs/architecture.md, "Authentication and access"): logout ends every
session of the agent; setting a password (own change, admin, reset link, CLI) ends every
session and deletes every API token of the agent; a role change or deactivation ends sessions;
a token of a deactivated agent stops working.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
import pytest
from alembic import command
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import Owner, Server
from tests.core.test_ingest import api_channel, msg, post_signed
from tidings.api import v1
from tidings.storage.db import alembic_config, migrate
from tidings.storage.models import ApiToken
from tidings.storage.types import utcnow

PASSWORD = "agent-password-1"
CSRF = {"X-Requested-With": "tidings"}


async def sign_in(server: Server, email: str, password: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=server.url, timeout=20)
    page = await client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    resp = await client.post(
        "/login", data={"email": email, "password": password, "csrf": token.group(1)}
    )
    assert resp.status_code == 303, resp.text
    return client


async def new_agent(api: httpx.AsyncClient, email: str, role: str = "agent") -> int:
    resp = await api.post(
        "/api/v1/admin/agents",
        json={"email": email, "name": email.split("@")[0], "role": role, "password": PASSWORD},
    )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def token_of(client: httpx.AsyncClient, **body: object) -> dict[str, object]:
    resp = await client.post("/api/v1/api_tokens", json={"name": "t", **body}, headers=CSRF)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def bearer(server: Server, token: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, timeout=20, headers={"Authorization": f"Bearer {token}"}
    )


async def test_logout_revokes_the_cookie(server: Server, owner: Owner) -> None:
    browser = await sign_in(server, "owner@example.com", "correct horse battery")
    stolen = dict(browser.cookies)
    page = await browser.get("/inbox")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    assert (await browser.post("/logout", data={"csrf": csrf.group(1)})).status_code == 303
    await browser.aclose()
    async with httpx.AsyncClient(base_url=server.url, cookies=stolen) as replay:
        assert (await replay.get("/api/v1/me")).status_code == 401
        assert (await replay.get("/inbox")).headers.get("location") == "/login"
    # Signing in again works, with a new cookie.
    again = await sign_in(server, "owner@example.com", "correct horse battery")
    assert (await again.get("/api/v1/me")).status_code == 200
    await again.aclose()


async def test_password_change_ends_other_sessions_and_tokens(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await new_agent(api, "ana@example.com")
    here = await sign_in(server, "ana@example.com", PASSWORD)
    elsewhere = await sign_in(server, "ana@example.com", PASSWORD)
    token = (await token_of(here))["token"]
    async with bearer(server, token) as script:
        assert (await script.get("/api/v1/me")).status_code == 200
        wrong = await here.post(
            "/api/v1/me/password",
            json={"current_password": "not it", "new_password": "a-new-password-2"},
            headers=CSRF,
        )
        assert wrong.status_code == 422
        changed = await here.post(
            "/api/v1/me/password",
            json={"current_password": PASSWORD, "new_password": "a-new-password-2"},
            headers=CSRF,
        )
        assert changed.status_code == 204, changed.text
        assert (await here.get("/api/v1/me")).status_code == 200  # given a fresh cookie
        assert (await elsewhere.get("/api/v1/me")).status_code == 401
        assert (await script.get("/api/v1/me")).status_code == 401
    await here.aclose()
    await elsewhere.aclose()
    await (await sign_in(server, "ana@example.com", "a-new-password-2")).aclose()


async def test_admin_set_password_role_change_and_deactivation_revoke(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    agent_id = await new_agent(api, "ben@example.com")
    browser = await sign_in(server, "ben@example.com", PASSWORD)
    token = (await token_of(browser))["token"]
    async with bearer(server, token) as script:
        assert (await script.get("/api/v1/me")).status_code == 200
        reset = await api.patch(f"/api/v1/admin/agents/{agent_id}", json={"password": "z" * 12})
        assert reset.status_code == 200
        assert (await browser.get("/api/v1/me")).status_code == 401
        assert (await script.get("/api/v1/me")).status_code == 401
    await browser.aclose()

    browser = await sign_in(server, "ben@example.com", "z" * 12)
    token = (await token_of(browser))["token"]
    promoted = await api.patch(f"/api/v1/admin/agents/{agent_id}", json={"role": "admin"})
    assert promoted.status_code == 200
    assert (await browser.get("/api/v1/me")).status_code == 401  # sign in again as admin
    await browser.aclose()
    browser = await sign_in(server, "ben@example.com", "z" * 12)
    await api.patch(f"/api/v1/admin/agents/{agent_id}", json={"active": False})
    async with bearer(server, token) as script:
        assert (await script.get("/api/v1/me")).status_code == 401
    assert (await browser.get("/api/v1/me")).status_code == 401
    # Reactivation does not bring the old session back.
    await api.patch(f"/api/v1/admin/agents/{agent_id}", json={"active": True})
    assert (await browser.get("/api/v1/me")).status_code == 401
    await browser.aclose()


async def test_token_scopes_are_enforced_and_never_widened(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel_id = await api_channel(api)
    await post_signed(server, channel_id, {"messages": [msg("s-1", "cy", "hi", 1_750_000_000)]})
    conversation_id = None
    for _ in range(200):
        data = (await api.get("/api/v1/conversations")).json()["data"]
        if data:
            conversation_id = data[0]["id"]
            break
        await asyncio.sleep(0.05)
    assert conversation_id is not None
    note = {"text": "internal"}
    read = await token_of(api, scopes=["read"])
    reply = await token_of(api, scopes=["read", "reply"])
    assert read["scopes"] == ["read"] and reply["scopes"] == ["read", "reply"]
    async with bearer(server, read["token"]) as r, bearer(server, reply["token"]) as w:
        assert (await r.get(f"/api/v1/conversations/{conversation_id}")).status_code == 200
        assert (
            await r.post(f"/api/v1/ui/conversations/{conversation_id}/notes", json=note)
        ).status_code == 403
        assert (await r.get("/api/v1/admin/agents")).status_code == 403
        assert (
            await r.post("/api/v1/api_tokens", json={"name": "more", "scopes": ["read"]})
        ).status_code == 403
        assert (
            await w.post(f"/api/v1/ui/conversations/{conversation_id}/notes", json=note)
        ).status_code in (200, 201)
        assert (await w.get("/api/v1/admin/agents")).status_code == 403
        assert (
            await w.patch(f"/api/v1/admin/agents/{owner.agent_id}", json={"name": "x"})
        ).status_code == 403
        # A token cannot mint a broader one; without scopes it mints its own.
        broader = await w.post("/api/v1/api_tokens", json={"name": "x", "scopes": ["admin"]})
        assert broader.status_code == 403
        child = await token_of(w)
        assert child["scopes"] == ["read", "reply"]
    # The bootstrap token (every scope) still does everything.
    assert (await api.get("/api/v1/admin/agents")).status_code == 200
    listed = {t["id"]: t for t in (await api.get("/api/v1/admin/api_tokens")).json()}
    assert listed[read["id"]]["scopes"] == ["read"]
    assert listed[read["id"]]["last_used_at"] is not None


async def test_expired_tokens_are_refused(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    soon = (utcnow() + timedelta(hours=1)).isoformat()
    parent = await token_of(api, expires_at=soon)
    assert parent["expires_at"] is not None
    async with bearer(server, parent["token"]) as client:
        assert (await client.get("/api/v1/me")).status_code == 200
        # A token minted by an expiring token expires no later than it.
        child = await token_of(client, expires_at=(utcnow() + timedelta(days=30)).isoformat())
        assert str(child["expires_at"]) <= str(parent["expires_at"])
    past = await api.post(
        "/api/v1/api_tokens",
        json={"name": "old", "expires_at": (utcnow() - timedelta(minutes=1)).isoformat()},
    )
    assert past.status_code == 422
    async with server.runtime.db.write() as s:
        await s.execute(
            update(ApiToken)
            .where(ApiToken.id == parent["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    async with bearer(server, parent["token"]) as client:
        resp = await client.get("/api/v1/me")
        assert resp.status_code == 401
        assert "expired" in resp.json()["error"]["message"]


async def test_migration_gives_existing_tokens_every_scope(database_url: str) -> None:
    """Tokens made before 0015_sessions_tokens keep working as before: every scope, no expiry;
    agents start at session version 0."""
    await asyncio.to_thread(
        command.downgrade, alembic_config(database_url), "0015_sessions_tokens@-1"
    )
    engine = create_async_engine(database_url)
    now = utcnow()
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO workspace (id, name, created_at) VALUES (7, 'Old', :now)"),
                {"now": now},
            )
            await conn.execute(
                text(
                    "INSERT INTO agent (id, workspace_id, email, name, role, availability, active,"
                    " created_at) VALUES (7, 7, 'old@example.com', 'Old', 'owner', 'online',"
                    " true, :now)"
                ),
                {"now": now},
            )
            await conn.execute(
                text(
                    "INSERT INTO api_token (workspace_id, agent_id, name, token_hash, created_at)"
                    " VALUES (7, 7, 'legacy', 'h', :now)"
                ),
                {"now": now},
            )
        await asyncio.to_thread(migrate, database_url)
        async with engine.connect() as conn:
            scopes, expires = (
                await conn.execute(text("SELECT scopes, expires_at FROM api_token"))
            ).one()
            version = await conn.scalar(text("SELECT session_version FROM agent WHERE id = 7"))
    finally:
        await engine.dispose()
    assert (scopes, expires, version) == ("read reply admin", None, 0)


async def test_a_live_stream_ends_after_logout(
    server: Server, owner: Owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SSE stream re-authenticates every keepalive period (15 s; 0.5 s here)."""
    monkeypatch.setattr(v1, "KEEPALIVE_SECONDS", 0.5)
    browser = await sign_in(server, "owner@example.com", "correct horse battery")
    page = await browser.get("/inbox")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    async with httpx.AsyncClient(
        base_url=server.url, cookies=dict(browser.cookies), timeout=30
    ) as listener:

        async def listen() -> None:
            async with listener.stream("GET", "/api/v1/events") as resp:
                assert resp.status_code == 200
                async for _line in resp.aiter_lines():
                    pass

        stream = asyncio.create_task(listen())
        await asyncio.sleep(1.0)
        assert not stream.done()
        assert (await browser.post("/logout", data={"csrf": csrf.group(1)})).status_code == 303
        await asyncio.wait_for(stream, 10)  # the server ended it
    await browser.aclose()
