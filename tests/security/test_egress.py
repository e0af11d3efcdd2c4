"""The egress policy (issue #15, item 5): a URL that came from outside — a signed webhook's
attachment URL, a redirect, an admin's outgoing-webhook target — cannot make Tidings reach an
internal service. Real HTTP throughout: a test server whose allow list holds only its own
origin (the sandbox) and one redirector, a "victim" service on loopback that records every
request it gets, and the redirector, which sends Tidings on to the victim."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tests.conftest import _Uvicorn, eventually, free_port, make_settings, sandbox_headers, serving
from tests.media.test_media_meta import PAGE_ID, PSID, thread
from tidings.actions.admin import bootstrap
from tidings.egress import EgressPolicy, EgressRefused, refused_range
from tidings.runtime import Runtime
from tidings.storage.models import AutomationRule, WebhookSubscription

JPEG = b"\xff\xd8\xff\xe0internal-secret"


@dataclass
class Service:
    port: int
    hits: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@asynccontextmanager
async def service(handler: Any) -> AsyncIterator[Service]:
    svc = Service(free_port())

    async def any_path(request: Request) -> Response:
        svc.hits.append(f"{request.method} {request.url.path}")
        result: Response = await handler(request)
        return result

    app = Starlette(
        routes=[Route("/{path:path}", any_path, methods=["GET", "POST", "HEAD", "PUT"])]
    )
    server = _Uvicorn(
        uvicorn.Config(app, host="127.0.0.1", port=svc.port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield svc
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@dataclass
class World:
    url: str
    api: httpx.AsyncClient
    victim: Service
    redirector: Service
    sandbox: dict[str, str]  # the header that opens the sandbox (tests/conftest.py)
    runtime: Runtime


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async def secret(_request: Request) -> Response:
        return Response(JPEG, media_type="image/jpeg")

    async with service(secret) as victim:

        async def bounce(_request: Request) -> Response:
            return RedirectResponse(victim.url("/latest/meta-data/iam"), status_code=302)

        async with service(bounce) as redirector:
            port = free_port()
            # Not the suite's default allow list (all of 127.0.0.1): only the redirector's port.
            # With the sandbox on, the server's own origin is allowed as well.
            settings = make_settings(
                database_url,
                tmp_path / "data",
                port,
                egress_allow=(f"127.0.0.1:{redirector.port}",),
            )
            async with serving(settings) as srv:
                boot = await bootstrap(srv.runtime, "o@example.com", "correct horse battery", "T")
                async with httpx.AsyncClient(
                    base_url=srv.url,
                    headers={"Authorization": f"Bearer {boot['api_token']}"},
                    timeout=20,
                ) as api:
                    yield World(
                        srv.url, api, victim, redirector, sandbox_headers(settings), srv.runtime
                    )


async def messenger(world: World) -> httpx.AsyncClient:
    resp = await world.api.post(
        "/api/v1/channels",
        json={
            "kind": "messenger",
            "name": "Page",
            "config": {
                "page_id": PAGE_ID,
                "page_access_token": "EAAB-page-token",
                "app_secret": "egress-test-secret",
                "verify_token": "verify-me",
                "api_base_url": f"{world.url}/sandbox/messenger",
            },
        },
    )
    assert resp.status_code == 201, resp.text
    return httpx.AsyncClient(
        base_url=f"{world.url}/sandbox/messenger", headers=world.sandbox, timeout=20
    )


async def test_signed_attachment_url_to_loopback_is_not_fetched(world: World) -> None:
    sim = await messenger(world)
    # A correctly signed webhook (the simulator signs with the page's app secret) whose
    # attachments point at an internal service, directly and through an allowed redirector;
    # and one ordinary attachment on the sandbox's CDN, which is allowed.
    sent = await sim.post(
        "/_sim/inbound",
        json={
            "account_id": PAGE_ID,
            "from": PSID,
            "type": "attachments",
            "attachments": [
                {"type": "image", "payload": {"url": world.victim.url("/admin/secret.jpg")}},
                {"type": "video", "payload": {"url": world.redirector.url("/cdn/clip.mp4")}},
                {"type": "file"},
            ],
        },
    )
    assert sent.json()["status"] == 200, sent.text
    msgs = await thread(world.api, 1)
    atts = {a["kind"]: a for m in msgs for a in m["attachments"]}
    assert atts["file"]["state"] == "stored"
    assert atts["image"]["state"] == "failed"
    assert "loopback" in atts["image"]["error"], atts["image"]
    assert atts["image"]["download_url"] is None
    assert atts["video"]["state"] == "failed"
    assert "Redirected to a refused address" in atts["video"]["error"], atts["video"]
    assert "loopback" in atts["video"]["error"]
    assert world.redirector.hits == ["GET /cdn/clip.mp4"]
    assert world.victim.hits == []  # nothing ever reached the internal service
    await sim.aclose()


async def test_outgoing_webhook_to_an_internal_address_is_refused(world: World) -> None:
    """Refused when typed in (422, nothing stored), and again at delivery: a name that
    resolved outside when the subscription was made may point inside later."""
    refused = await world.api.post(
        "/api/v1/webhook_subscriptions",
        json={"url": world.victim.url("/hook"), "events": ["conversation.created"]},
    )
    assert refused.status_code == 422, refused.text
    assert "loopback" in refused.json()["error"]["message"]
    assert (await world.api.get("/api/v1/webhook_subscriptions")).json() == []

    # A name that does not resolve (yet) is accepted; then "DNS" moves it to the internal
    # service: the row now holds the internal address, as a re-resolved name would.
    sub = await world.api.post(
        "/api/v1/webhook_subscriptions",
        json={"url": "http://crm.invalid/hook", "events": ["conversation.created"]},
    )
    assert sub.status_code == 201, sub.text
    async with world.runtime.db.write() as s:
        await s.execute(
            update(WebhookSubscription)
            .where(WebhookSubscription.id == sub.json()["id"])
            .values(url=world.victim.url("/hook"))
        )
    sim = await messenger(world)
    sent = await sim.post(
        "/_sim/inbound", json={"account_id": PAGE_ID, "from": PSID, "type": "text", "text": "hi"}
    )
    assert sent.json()["status"] == 200, sent.text

    async def logged() -> list[dict[str, Any]]:
        resp = await world.api.get(f"/api/v1/webhook_subscriptions/{sub.json()['id']}/deliveries")
        rows: list[dict[str, Any]] = resp.json()
        return [r for r in rows if r["last_error"]]

    rows = await eventually(logged, timeout=20)
    assert "egress policy" in rows[0]["last_error"] and "loopback" in rows[0]["last_error"]
    assert rows[0]["last_status"] is None
    assert world.victim.hits == []
    await sim.aclose()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "0.0.0.0",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # CGNAT
        "100.100.100.200",  # Alibaba metadata, CGNAT range
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fd00:ec2::254",  # AWS metadata over IPv6
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",  # 6to4 around 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
        "ff02::1",
    ],
)
def test_internal_ranges_are_refused(address: str) -> None:
    assert refused_range(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert refused_range(ipaddress.ip_address(address)) is None


async def test_names_are_checked_after_resolving_and_schemes_are_limited() -> None:
    policy = EgressPolicy(["10.9.0.0/16", "[::1]:8443", "media.internal:443"])
    # A name that resolves to loopback is refused like the address itself.
    with pytest.raises(EgressRefused, match="loopback"):
        await policy.resolve("localhost", 80)
    assert await policy.resolve("10.9.1.1", 80) == ["10.9.1.1"]  # allowed CIDR
    assert await policy.resolve("::1", 8443) == ["::1"]  # allowed address and port
    with pytest.raises(EgressRefused):
        await policy.resolve("::1", 8444)  # another port
    for url in ("file:///etc/passwd", "gopher://x/", "ftp://x/", "http://user:pw@example.com/"):
        with pytest.raises(EgressRefused):
            policy.check_url(url)
    assert policy.check_url("https://example.com/a") == ("example.com", 443)


async def test_automation_webhook_to_an_internal_address_is_refused(world: World) -> None:
    """An automation rule's webhook action is an admin-typed URL too (as a subscription's):
    refused when saved, and at run time if its name later points inside."""
    rule_body: dict[str, Any] = {
        "name": "Tell the CRM",
        "event": "conversation.created",
        "actions": [{"type": "webhook", "url": world.victim.url("/hook")}],
    }
    refused = await world.api.post("/api/v1/automation/rules", json=rule_body)
    assert refused.status_code == 422, refused.text
    assert "actions[0].url" in refused.json()["error"]["message"]
    assert (await world.api.get("/api/v1/automation/rules")).json()["data"] == []

    rule_body["actions"] = [{"type": "webhook", "url": "http://crm.invalid/hook"}]
    rule = await world.api.post("/api/v1/automation/rules", json=rule_body)
    assert rule.status_code == 201, rule.text
    async with world.runtime.db.write() as s:
        stored = await s.get_one(AutomationRule, rule.json()["id"])
        stored.actions = [{**stored.actions[0], "url": world.victim.url("/hook")}]
    sim = await messenger(world)
    sent = await sim.post(
        "/_sim/inbound", json={"account_id": PAGE_ID, "from": PSID, "type": "text", "text": "hi"}
    )
    assert sent.json()["status"] == 200, sent.text

    async def finished() -> list[dict[str, Any]]:
        resp = await world.api.get("/api/v1/automation/runs", params={"rule_id": rule.json()["id"]})
        runs: list[dict[str, Any]] = resp.json()["data"]
        return [r for r in runs if r["state"] != "running"]

    runs = await eventually(finished, timeout=20)
    assert world.victim.hits == []
    assert "loopback" in str(runs[0]), runs
    await sim.aclose()
