"""Session-cookie auth for the API (what the browser UI uses), with its CSRF rule."""

from __future__ import annotations

import httpx

from tests.conftest import Owner, Server
from tidings.api.auth import SESSION_COOKIE, session_value


async def test_session_cookie_and_csrf_header(server: Server, owner: Owner) -> None:
    cookie = session_value(server.runtime, owner.agent_id, 0)
    async with httpx.AsyncClient(base_url=server.url, cookies={SESSION_COOKIE: cookie}) as browser:
        me = await browser.get("/api/v1/me")
        assert me.status_code == 200
        assert me.json()["agent_id"] == owner.agent_id
        body = {"kind": "api", "name": "Site", "config": {"secret": "s" * 20}}
        forged = await browser.post("/api/v1/channels", json=body)
        assert forged.status_code == 403  # a cross-site form post cannot add this header
        assert "X-Requested-With" in forged.json()["error"]["message"]
        ok = await browser.post(
            "/api/v1/channels", json=body, headers={"X-Requested-With": "tidings"}
        )
        assert ok.status_code == 201
    async with httpx.AsyncClient(
        base_url=server.url, cookies={SESSION_COOKIE: cookie + "x"}
    ) as tampered:
        assert (await tampered.get("/api/v1/me")).status_code == 401
