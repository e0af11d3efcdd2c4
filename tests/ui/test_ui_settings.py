"""Admin settings in the browser: connect a channel from its schema-built form and read its
setup, add an agent and give them an inbox, canned replies, outgoing webhooks with their
delivery log and replay, API tokens. Also saves the README screenshots."""

from __future__ import annotations

import httpx
from playwright.async_api import BrowserContext, expect

from tests.conftest import Owner, Server, eventually, sandbox_phone_url
from tests.ui.helpers import (
    api_channel,
    customer_says,
    new_page,
    screenshot,
    sign_in,
    wait_conversations,
)


async def test_settings_pages(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.click(".top nav a:has-text('Settings')")
    await page.wait_for_selector("body[data-ready='1']")

    # Channels: the WhatsApp form comes from WhatsAppConfig's JSON schema.
    await page.select_option("#new-kind", "whatsapp")
    await page.fill("#new-name", "WhatsApp main line")
    await page.fill("#cfg-phone_number_id", "100000000000055")
    await page.fill("#cfg-access_token", "wa-access-token-for-tests")
    await page.fill("#cfg-app_secret", "wa-app-secret-for-tests")
    await page.fill("#cfg-verify_token", "verify-me-please")
    await page.fill("#cfg-api_base_url", f"{server.url}/sandbox/whatsapp")
    assert await page.get_attribute("#cfg-access_token", "type") == "password"
    await page.click("#connect-form button[type=submit]")
    await expect(page.locator("#channels-table tr[data-id]")).to_have_count(1)
    channel = (await api.get("/api/v1/channels")).json()[0]
    await expect(page.locator("#setup-webhook")).to_have_text(
        f"{server.url}/webhooks/whatsapp/{channel['id']}"
    )
    await expect(page.locator("#setup-verify")).to_have_text("verify-me-please")
    assert channel["config"]["access_token"] == "••••"
    await screenshot(page, "settings-channels")

    # Agents: add one, then make them a member of the Support inbox.
    await page.click("nav.side a[href='#agents']")
    await page.fill("#a-name", "Bo Berg")
    await page.fill("#a-email", "bo@example.com")
    await page.fill("#a-password", "bo-password-1")
    await page.click("#agent-form button[type=submit]")
    await expect(page.locator("#agents-table tr")).to_have_count(3)
    await page.click("nav.side a[href='#inboxes']")
    group = page.locator(f"form.group[data-id='{owner.inbox_id}']")
    await group.locator("label:has-text('Bo Berg') input").check()
    await group.locator("button[type=submit]").click()
    await expect(page.locator(".notice")).to_have_text("Saved Support.")
    inboxes = (await api.get("/api/v1/admin/inboxes")).json()
    bo = next(a for a in (await api.get("/api/v1/admin/agents")).json() if a["name"] == "Bo Berg")
    assert bo["id"] in next(i for i in inboxes if i["id"] == owner.inbox_id)["agent_ids"]

    # Canned replies.
    await page.click("nav.side a[href='#canned']")
    await page.fill("#cr-code", "hello")
    await page.fill("#cr-content", "Hello! How can we help?")
    await page.click("#canned-form button[type=submit]")
    await expect(page.locator("#canned-table td").first).to_have_text("/hello")

    # Outgoing webhooks: subscribe the API sandbox's receiver (it rejects unsigned-by-it
    # posts with 401), so the delivery log shows failures that can be replayed.
    await page.click("nav.side a[href='#webhooks']")
    await page.fill("#w-url", f"{server.url}/sandbox/api/accounts/nobody/receive")
    await page.click("#webhook-form button[type=submit]")
    await expect(page.locator("#webhook-secret .copy")).to_have_count(1)
    await api_channel(api, server, "hooks")
    await customer_says(server, "hooks", "c-1", "trigger some webhooks")
    await wait_conversations(api, 1)
    sub = (await api.get("/api/v1/webhook_subscriptions")).json()[0]

    async def logged() -> list[dict[str, object]] | None:
        rows: list[dict[str, object]] = (
            await api.get(f"/api/v1/webhook_subscriptions/{sub['id']}/deliveries")
        ).json()
        return rows if len(rows) >= 2 and all(r["attempts"] for r in rows) else None

    rows = await eventually(logged)
    await page.click("#subs-table button:has-text('Delivery log')")
    await expect(page.locator("#deliveries-table tr")).to_have_count(len(rows) + 1)
    await expect(page.locator("#deliveries-table tr").nth(1).locator("td").nth(3)).to_have_text(
        "404"
    )
    await page.locator("#deliveries-table button:has-text('Replay')").first.click()
    await expect(page.locator("#deliveries-table tr")).to_have_count(len(rows) + 1)

    # API tokens: created once, listed, revoked.
    await page.click("nav.side a[href='#tokens']")
    await page.fill("#t-name", "CRM sync")
    await page.click("#token-form button[type=submit]")
    token = (await page.locator("#token-once .copy").text_content()) or ""
    assert token.startswith("tid_")
    async with httpx.AsyncClient(base_url=server.url) as client:
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        row = page.locator("#tokens-table tr:has-text('CRM sync')")
        await row.locator("button").click()
        # Revoking asks first and says what happens to integrations using it.
        await expect(page.locator("dialog.confirm .consequences")).to_contain_text("HTTP 401")
        await page.click("#confirm-ok")
        await expect(page.locator("#tokens-table tr:has-text('CRM sync')")).to_have_count(0)
        gone = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert gone.status_code == 401
    assert seen.page_errors == [] and seen.console_errors == []


async def test_screens_for_the_readme(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    """A populated inbox, light and dark, and the customer phone (saved to docs/screens)."""
    await api_channel(api, server, "demo")
    await api.post(
        "/api/v1/admin/canned_replies", json={"short_code": "thanks", "content": "Thanks!"}
    )
    chats = [
        ("c-1", "Ana Lima", "Hi! My order #4711 hasn't arrived yet."),
        ("c-2", "Bruno Costa", "Can I change my delivery address?"),
        ("c-3", "Chen Wei", "Do you ship to Singapore?"),
        ("c-4", "Dana Ortiz", "The app crashes when I pay 😕"),
    ]
    for user, name, text in chats:
        await customer_says(server, "demo", user, text, name=name)
    convs = await wait_conversations(api, 4)
    ana = next(c for c in convs if c["last_message_preview"].startswith("Hi! My order"))
    await api.post(
        f"/api/v1/conversations/{ana['id']}/messages",
        json={"text": "Sorry about that, Ana! Let me check."},
    )
    await api.post(
        f"/api/v1/ui/conversations/{ana['id']}/notes", json={"text": "@owner courier says Tuesday"}
    )
    await api.patch(
        f"/api/v1/ui/conversations/{ana['id']}", json={"labels": ["shipping"], "priority": "high"}
    )
    await customer_says(server, "demo", "c-1", "Thank you!", name="Ana Lima")

    page, _seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.click("#list .conv:has-text('Ana Lima')")
    await expect(page.locator("#messages .msg.out .tick")).to_have_attribute(
        "data-status", "read", timeout=10_000
    )
    await screenshot(page, "inbox-thread")
    await page.emulate_media(color_scheme="dark")
    await screenshot(page, "inbox-dark")
    await page.keyboard.press("?")
    await screenshot(page, "shortcuts")

    phone, _ = await new_page(context)
    await phone.set_viewport_size({"width": 480, "height": 800})
    await phone.goto(sandbox_phone_url(server))
    await phone.select_option("#channel", label="Website demo (api)")
    await phone.fill("#user", "c-1")
    await phone.dispatch_event("#user", "change")
    await expect(phone.locator("#thread .msg")).to_have_count(3)
    await screenshot(phone, "phone")
