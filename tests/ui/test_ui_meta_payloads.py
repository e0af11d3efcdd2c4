"""In the browser: a Messenger customer's name fetched from the profile API appears in the
inbox list, the thread head and the contact panel; a Messenger policy block shows in the
channel's Setup panel in Settings."""

from __future__ import annotations

import time

import httpx
import orjson
from playwright.async_api import BrowserContext, expect

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.ui.helpers import new_page, sign_in
from tidings.channels.meta_common import sign

PAGE_ID, SECRET = "104857600000088", "ui-meta-secret"


async def _messenger(api: httpx.AsyncClient, server: Server) -> dict[str, object]:
    config = {
        "page_id": PAGE_ID,
        "page_access_token": "EAAB-ui",
        "app_secret": SECRET,
        "verify_token": "v",
        "api_base_url": f"{server.url}/sandbox/messenger",
    }
    resp = await api.post(
        "/api/v1/channels", json={"kind": "messenger", "name": "Page", "config": config}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def test_profile_name_and_policy_notice_in_the_browser(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    channel = await _messenger(api, server)
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")

    async with httpx.AsyncClient(
        base_url=f"{server.url}/sandbox/messenger", headers=sandbox_headers(server), timeout=20
    ) as sim:
        body = {"account_id": PAGE_ID, "from": "7100000000000088", "name": "Aiko Tanaka"}
        resp = await sim.post("/_sim/inbound", json={**body, "text": "Is the shop open?"})
        assert resp.json()["status"] == 200, resp.text
    # The list row, then (live, without a reload) the name from the profile API.
    await expect(page.locator("#list .conv .name")).to_have_text("Aiko Tanaka")
    await page.click("#list .conv")
    await expect(page.locator("#t-name")).to_have_text("Aiko Tanaka")
    await expect(page.locator("#contact-pane .contact-name")).to_have_text("Aiko Tanaka")

    now = int(time.time() * 1000)
    doc = {
        "object": "page",
        "entry": [
            {
                "id": PAGE_ID,
                "time": now,
                "messaging": [
                    {
                        "recipient": {"id": PAGE_ID},
                        "timestamp": now,
                        "policy_enforcement": {"action": "warning", "reason": "Too many tags."},
                    }
                ],
            }
        ],
    }
    raw = orjson.dumps(doc)
    async with httpx.AsyncClient(timeout=20) as client:
        resp = await client.post(
            str(channel["webhook_url"]),
            content=raw,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(SECRET, raw)},
        )
    assert resp.status_code == 200

    async def noted() -> bool:
        rows = (await api.get("/api/v1/channels")).json()
        return bool(rows[0]["health"]["notice"])

    await eventually(noted)
    await page.click(".top nav a:has-text('Settings')")
    await page.wait_for_selector("body[data-ready='1']")
    await page.click(f"#channels-table tr[data-id='{channel['id']}'] button:has-text('Setup')")
    await expect(page.locator("#setup-notice")).to_contain_text(
        "Messenger warned this channel about its messaging: Too many tags."
    )
    assert seen.page_errors == [] and seen.console_errors == []
