"""The sandbox shows the whole product (issue 18, item 14): the demo WhatsApp business account
has approved templates synced into Tidings; the customer phone ages a conversation past its
service window; the agent then starts with a template, and the phone shows its text."""

from __future__ import annotations

import httpx
from playwright.async_api import BrowserContext, expect

from tests.conftest import Owner, Server, eventually, sandbox_phone_url
from tests.ui.helpers import new_page, screenshot, sign_in, wait_conversations
from tidings.simulators.sandbox import DEMO_WABA


async def test_demo_templates_age_and_template_on_the_phone(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    made = await api.post(
        "/api/v1/channels",
        json={
            "kind": "whatsapp",
            "name": "WhatsApp (sandbox)",
            "config": {
                "phone_number_id": "100000000000001",
                "display_phone_number": "15550001111",
                "access_token": "demo-access-token",
                "app_secret": "demo-app-secret",
                "verify_token": "demo-verify",
                "api_base_url": f"{server.url}/sandbox/whatsapp",
                "waba_id": DEMO_WABA,
            },
        },
    )
    assert made.status_code == 201, made.text

    async def synced() -> list:
        rows = (await api.get("/api/v1/admin/templates")).json()
        return rows if len(rows) == 3 else []

    templates = await eventually(synced, timeout=20)
    assert {t["status"] for t in templates} == {"APPROVED"}
    assert {t["name"] for t in templates} == {"order_update", "appointment_reminder", "follow_up"}

    phone, phone_seen = await new_page(context)
    await phone.set_viewport_size({"width": 390, "height": 844})
    await phone.goto(sandbox_phone_url(server))
    await phone.select_option("#channel", label="WhatsApp (sandbox) (whatsapp)")
    await phone.fill("#user", "+4915112345678")
    await phone.fill("#name", "Ana Phone")
    await phone.fill("#text", "Where is my order?")
    await phone.click("#send")
    conv = (await wait_conversations(api, 1))[0]
    contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
    assert contact["display_name"] == "Ana Phone"
    options = (await api.get(f"/api/v1/conversations/{conv['id']}/channels")).json()
    assert options[0]["can_send_text"] is True

    await phone.click("#age-window")
    await expect(phone.locator("#age-result")).to_contain_text("25 h old")
    options = (await api.get(f"/api/v1/conversations/{conv['id']}/channels")).json()
    assert options[0]["can_send_text"] is False and options[0]["needs_template"] is True

    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/contacts")
    await page.wait_for_selector("body[data-ready='1']")
    await page.locator("#ct-table tbody tr").first.click()
    await page.click("#ct-write")
    dialog = page.locator("#new-conversation")
    await dialog.locator(".nc-channel[data-kind='whatsapp']").click()
    await expect(dialog.locator("#nc-window")).to_contain_text("closed")
    await dialog.locator("#nc-template").select_option(label="order_update (en)")
    await dialog.locator(".nc-param").nth(0).fill("Ana")
    await dialog.locator(".nc-param").nth(1).fill("#4711")
    await dialog.locator("#nc-send-template").click()
    await page.wait_for_url(f"{server.url}/inbox#c/{conv['id']}")

    # The phone shows the template's text, not "[template order_update]".
    shown = "Hi Ana, your order #4711 has shipped. Reply here with any question."
    await expect(phone.locator("#thread .msg.out")).to_contain_text([shown])
    await screenshot(phone, "phone-template")

    # Settings → Templates: the sync button fetches them again.
    await page.goto(f"{server.url}/settings#templates")
    await page.wait_for_selector("body[data-ready='1']")
    await page.locator(".sync-templates").click()
    await expect(page.locator(".notice")).to_contain_text("3 templates (0 new")
    assert seen.page_errors == [] and phone_seen.page_errors == []


async def test_age_refuses_unknown_customers(server: Server, owner: Owner) -> None:
    from tests.conftest import sandbox_headers

    async with httpx.AsyncClient(base_url=server.url, headers=sandbox_headers(server)) as c:
        resp = await c.post("/sandbox/phone/age", json={"channel_id": 1, "user": "+1"})
        assert resp.status_code == 400
        assert (await c.post("/sandbox/phone/age", content=b"[")).status_code == 400
