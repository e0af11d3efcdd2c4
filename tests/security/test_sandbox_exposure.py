"""The sandbox behind a reverse proxy (issue 15, item 1).

A same-host proxy that adds no X-Forwarded-For makes every client 127.0.0.1, so the loopback
check alone let an outsider read the phone page and simulator state, inject customer messages
into the real inbox and get payloads signed with a channel's app secret. These tests play that
outsider with a plain client on 127.0.0.1 (exactly what such a proxy looks like to the server)
and check that only this install's secret opens the sandbox (src/tidings/simulators/guard.py),
that it is off unless asked for, and that `tidings doctor` fails on an exposed one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from tests import factories
from tests.conftest import (
    Owner,
    Server,
    _Uvicorn,
    eventually,
    free_port,
    make_settings,
    sandbox_headers,
    serving,
    tidings_env,
)
from tests.scale.test_doctor import doctor_async
from tests.web.test_web_access import signed_in
from tidings.config import load_settings
from tidings.simulators.guard import TOKEN_COOKIE, TOKEN_PARAM
from tidings.simulators.whatsapp import WhatsAppSimulator

PNID = "100000000000777"
APP_SECRET = "app-secret-that-signs-webhooks"


async def whatsapp_channel(server: Server, api: httpx.AsyncClient) -> dict[str, Any]:
    return await factories.whatsapp_channel(
        api,
        server,
        name="WA",
        phone_number_id=PNID,
        access_token="wa-access-token-of-this-install",
        app_secret=APP_SECRET,
        verify_token="vt",
    )


def inbound(text: str) -> dict[str, Any]:
    return {"phone_number_id": PNID, "from": "4915100000001", "name": "Eve", "text": text}


def raw_payload(text: str) -> dict[str, Any]:
    """A customer message in WhatsApp's webhook shape, for `_sim/deliver_raw` to sign."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550001111",
                                "phone_number_id": PNID,
                            },
                            "contacts": [{"profile": {"name": "Eve"}, "wa_id": "4915100000002"}],
                            "messages": [
                                {
                                    "from": "4915100000002",
                                    "id": "wamid.raw-1",
                                    "timestamp": "1751247548",
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


async def conversations(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    resp = await api.get("/api/v1/conversations")
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


async def test_an_anonymous_client_on_loopback_can_neither_read_nor_inject(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await whatsapp_channel(server, api)
    attempts: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/sandbox/phone", None),
        ("GET", "/sandbox/phone/channels", None),
        ("GET", f"/sandbox/phone/thread?channel_id={channel['id']}&user=4915100000001", None),
        (
            "POST",
            "/sandbox/phone/send",
            {"channel_id": channel["id"], "user": "+4915100000001", "text": "phone"},
        ),
        ("GET", "/sandbox/whatsapp/_sim/accounts", None),
        ("GET", "/sandbox/whatsapp/_sim/sent", None),
        ("POST", "/sandbox/whatsapp/_sim/inbound", inbound("injected")),
        (
            "POST",
            "/sandbox/whatsapp/_sim/deliver_raw",
            {"phone_number_id": PNID, "payload": raw_payload("signed for me")},
        ),
        ("GET", "/sandbox/api/_sim/received?account=x", None),
        ("POST", "/sandbox/twilio/_sim/inbound", {"from": "+15550001", "text": "x"}),
    ]
    # Headers a proxy or an attacker may add change nothing: no peer address is trusted.
    spoofed = {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"}
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as outsider:
        for method, path, body in attempts:
            for headers in ({}, spoofed, {"X-Tidings-Sandbox-Token": "guessed"}):
                resp = await outsider.request(method, path, json=body, headers=headers)
                assert resp.status_code == 401, (method, path, resp.status_code, resp.text)
                assert resp.json()["error"]["code"] == "sandbox_locked"
                assert APP_SECRET not in resp.text
        # The provider-API routes answer only to the provider credential (as Graph does).
        send = await outsider.post(
            f"/sandbox/whatsapp/v25.0/{PNID}/messages",
            json={"messaging_product": "whatsapp", "to": "4915100000001", "text": {"body": "x"}},
        )
        assert send.status_code == 401, send.text
    await asyncio.sleep(0.5)  # give an injected message time to be ingested, were there one
    assert await conversations(api) == []


async def test_the_sandbox_token_opens_control_routes_and_the_phone_page(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await whatsapp_channel(server, api)
    async with httpx.AsyncClient(
        base_url=server.url, headers=sandbox_headers(server), timeout=20
    ) as operator:
        accounts = await operator.get("/sandbox/whatsapp/_sim/accounts")
        assert accounts.status_code == 200
        assert [a["phone_number_id"] for a in accounts.json()] == [PNID]
        resp = await operator.post("/sandbox/whatsapp/_sim/inbound", json=inbound("hello"))
        assert resp.status_code == 200, resp.text
        raw = await operator.post(
            "/sandbox/whatsapp/_sim/deliver_raw",
            json={"phone_number_id": PNID, "payload": raw_payload("raw hello")},
        )
        assert raw.status_code == 200 and raw.json()["status"] == 200, raw.text
    # Both customers' messages reached the inbox, signed with the channel's app secret.
    assert len(await eventually(lambda: _at_least(api, 2))) == 2

    # The link `tidings serve` prints: the token moves into a cookie and out of the address.
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as browser:
        opened = await browser.get(f"/sandbox/phone?{TOKEN_PARAM}={server.settings.sandbox_token}")
        assert opened.status_code == 303
        assert opened.headers["location"] == "/sandbox/phone"
        cookie = opened.headers["set-cookie"].lower()
        assert f"{TOKEN_COOKIE}=" in cookie
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/sandbox" in cookie
        page = await browser.get("/sandbox/phone")
        assert page.status_code == 200 and "<html" in page.text.lower()
        listed = await browser.get("/sandbox/phone/channels")
        assert [c["id"] for c in listed.json()] == [channel["id"]]


async def _at_least(api: httpx.AsyncClient, n: int) -> list[dict[str, Any]] | None:
    found = await conversations(api)
    return found if len(found) >= n else None


async def test_a_signed_in_agent_may_use_the_phone_and_only_admins_the_control_routes(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    made = await api.post(
        "/api/v1/admin/agents",
        json={"email": "ag@example.com", "name": "Ag", "role": "agent", "password": "ag-pw-123456"},
    )
    assert made.status_code == 201, made.text
    owner_browser = await signed_in(server, "owner@example.com", "correct horse battery")
    agent_browser = await signed_in(server, "ag@example.com", "ag-pw-123456")
    try:
        for browser in (owner_browser, agent_browser):
            assert (await browser.get("/sandbox/phone")).status_code == 200
            assert (await browser.get("/sandbox/phone/channels")).status_code == 200
        assert (await owner_browser.get("/sandbox/whatsapp/_sim/accounts")).status_code == 200
        refused = await agent_browser.get("/sandbox/whatsapp/_sim/accounts")
        assert refused.status_code == 403, refused.text
        # A cookie that is not a session of this install opens nothing.
        forged = httpx.AsyncClient(
            base_url=server.url, cookies={"tidings_session": "1.forged.signature"}
        )
        async with forged:
            assert (await forged.get("/sandbox/phone")).status_code == 401
    finally:
        await owner_browser.aclose()
        await agent_browser.aclose()


async def test_the_sandbox_is_off_unless_asked_for(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIDINGS_SANDBOX", raising=False)
    assert load_settings(secret_key="k" * 40).sandbox is False
    settings = make_settings(database_url, tmp_path / "data", free_port(), sandbox=False)
    async with serving(settings) as srv, httpx.AsyncClient(base_url=srv.url) as client:
        for method, path in (
            ("GET", "/sandbox/phone"),
            ("GET", "/sandbox/whatsapp/_sim/accounts"),
            ("POST", "/sandbox/whatsapp/_sim/deliver_raw"),
            ("POST", "/sandbox/whatsapp/_sim/inbound"),
        ):
            resp = await client.request(method, path, headers=sandbox_headers(srv), json={})
            assert resp.status_code == 404, (path, resp.status_code)


async def test_doctor_fails_on_a_sandbox_beyond_this_machine(
    database_url: str, tmp_path: Path
) -> None:
    env = tidings_env(database_url, tmp_path / "data", free_port())
    # A public HTTPS address (".invalid" never resolves: the reachability probe only warns).
    env |= {"TIDINGS_PUBLIC_URL": "https://inbox.example.invalid", "TIDINGS_SANDBOX": "0"}
    code, out = await doctor_async(env)
    assert code == 0, out  # the same settings without the sandbox pass
    code, out = await doctor_async(env | {"TIDINGS_SANDBOX": "1"})
    assert code == 1, out
    assert "FAIL  sandbox" in out and "local trial only" in out, out

    local = tidings_env(database_url, tmp_path / "data", free_port())
    code, out = await doctor_async(local | {"TIDINGS_SANDBOX": "1", "TIDINGS_HOST": "0.0.0.0"})
    assert code == 1, out
    assert "FAIL  sandbox" in out and "0.0.0.0" in out, out


@pytest.fixture
async def open_sandbox() -> AsyncIterator[str]:
    """A server whose sandbox answers anyone, as the simulators did before the guard."""
    sim = WhatsAppSimulator()

    async def healthz(_request: Any) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/healthz", healthz), Mount("/sandbox/whatsapp", sim.app)])
    port = free_port()
    server = _Uvicorn(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await sim.aclose()
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_doctor_fails_when_the_running_sandbox_answers_strangers(
    database_url: str, tmp_path: Path, open_sandbox: str, server: Server
) -> None:
    env = tidings_env(database_url, tmp_path / "data", free_port())
    code, out = await doctor_async(env | {"TIDINGS_PUBLIC_URL": open_sandbox})
    assert code == 1, out
    assert "FAIL  sandbox" in out and "answers an anonymous request" in out, out
    # A server with the guard (sandbox on) passes the same probe.
    code, out = await doctor_async(
        tidings_env(server.settings.database_url, tmp_path / "d2", server.settings.port)
        | {"TIDINGS_SECRET_KEY": server.settings.secret_key}
    )
    assert code == 0, out


async def test_a_page_of_another_local_port_cannot_drive_the_sandbox_with_cookies(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """SameSite counts every port of localhost as one site, so a page of another local app
    could post a form or a simple fetch to the phone with the browser's cookies (the sandbox
    cookie or a session) and inject a customer message. A change admitted by cookies must be
    sent as application/json, which another origin cannot do without a preflight."""
    channel = await whatsapp_channel(server, api)
    send = {"channel_id": channel["id"], "user": "4915100000009", "name": "Eve", "text": "forged"}
    agent_browser = await signed_in(server, "owner@example.com", "correct horse battery")
    token_browser = httpx.AsyncClient(base_url=server.url, timeout=20)
    opened = await token_browser.get(
        f"/sandbox/phone?{TOKEN_PARAM}={server.settings.sandbox_token}"
    )
    assert opened.status_code == 303
    try:
        for browser in (agent_browser, token_browser):
            for content_type in ("text/plain", "application/x-www-form-urlencoded"):
                forged = await browser.post(
                    "/sandbox/phone/send",
                    content=orjson.dumps(send),
                    headers={"Content-Type": content_type},
                )
                assert forged.status_code == 403, (content_type, forged.text)
            raw = await browser.post(
                "/sandbox/whatsapp/_sim/inbound",
                content=orjson.dumps(inbound("forged too")),
                headers={"Content-Type": "text/plain"},
            )
            assert raw.status_code == 403, raw.text
        assert await conversations(api) == []
        # The phone page's own request (JSON) still goes through.
        sent = await token_browser.post("/sandbox/phone/send", json={**send, "text": "real"})
        assert sent.status_code == 200, sent.text
        assert len(await eventually(lambda: _at_least(api, 1))) == 1
    finally:
        await agent_browser.aclose()
        await token_browser.aclose()
