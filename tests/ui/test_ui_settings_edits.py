"""Settings edits (issue 18, item 6): a canned reply and a label edited in place (the label's
colour shown), a webhook paused and deleted, business hours set on the weekly grid with a
time zone from the IANA list."""

from __future__ import annotations

from datetime import datetime

import httpx
from playwright.async_api import BrowserContext, expect

from tests.conftest import Owner, Receiver, Server, eventually
from tests.ui.helpers import api_channel, customer_says, new_page, sign_in, wait_conversations


async def test_edit_canned_label_webhook_and_hours(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    context: BrowserContext,
    receiver: Receiver,
) -> None:
    await api.post("/api/v1/admin/canned_replies", json={"short_code": "hi", "content": "Hello!"})
    await api.post("/api/v1/admin/labels", json={"name": "vip", "color": "#aa0000"})
    await api.post(
        "/api/v1/webhook_subscriptions", json={"url": receiver.url, "events": ["message.created"]}
    )
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")

    await page.goto(f"{server.url}/settings#canned")
    await page.wait_for_selector("body[data-ready='1']")
    await page.locator("#canned-table .row-edit").click()
    await page.locator("#canned-table .edit-content").fill("Hello there!")
    await page.locator("#canned-table .row-save").click()
    await expect(page.locator("#canned-table td").nth(1)).to_have_text("Hello there!")

    await page.goto(f"{server.url}/settings#labels")
    await page.wait_for_selector("#labels-table .swatch")
    swatch = page.locator("#labels-table .swatch")
    assert await swatch.evaluate("s => getComputedStyle(s).backgroundColor") == "rgb(170, 0, 0)"
    await page.locator("#labels-table .row-edit").click()
    await page.locator("#labels-table .edit-name").fill("very-important")
    await page.locator("#labels-table .edit-color").fill("#00aa00")
    await page.locator("#labels-table .row-save").click()
    await expect(page.locator("#labels-table .label")).to_have_text("very-important")
    labels = (await api.get("/api/v1/ui/bootstrap")).json()["labels"]
    assert [(lb["name"], lb["color"]) for lb in labels] == [("very-important", "#00aa00")]

    await page.goto(f"{server.url}/settings#webhooks")
    await page.wait_for_selector("#subs-table .wh-toggle")
    await page.click("#subs-table .wh-toggle")
    await expect(page.locator("#subs-table td").nth(2)).to_have_text("paused")
    assert (await api.get("/api/v1/webhook_subscriptions")).json()[0]["active"] is False
    await page.click("#subs-table .wh-delete")
    await expect(page.locator(".wh-confirm")).to_contain_text("deletes its delivery log")
    await page.click(".wh-delete-confirm")
    await expect(page.locator("#subs-table .wh-toggle")).to_have_count(0)
    assert (await api.get("/api/v1/webhook_subscriptions")).json() == []

    await page.goto(f"{server.url}/settings#hours")
    await page.wait_for_selector("#bh-form")
    await expect(page.locator("#tz-list option[value='Europe/Paris']")).to_have_count(1)
    await page.fill("#bh-timezone", "Europe/Paris")
    monday = page.locator(".day-row").first
    await monday.locator(".day-open").check()
    await monday.locator(".day-from").fill("08:30")
    await monday.locator(".day-to").fill("16:00")
    await expect(page.locator("#bh-mon")).to_have_value("08:30-16:00")
    await page.click("#bh-save")
    await expect(page.locator("#bh-status")).not_to_have_text("No hours set: always open.")
    inbox_id = owner.inbox_id
    hours = (await api.get(f"/api/v1/inboxes/{inbox_id}/business_hours")).json()
    assert hours["timezone"] == "Europe/Paris" and hours["weekly"]["mon"] == [["08:30", "16:00"]]
    assert seen.page_errors == []


async def test_snooze_until_a_chosen_time(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await api_channel(api, server, "web")
    await customer_says(server, "web", "visitor-1", "hello", name="Web Visitor")
    conv = (await wait_conversations(api, 1))[0]
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/inbox#c/{conv['id']}")
    await page.select_option("#t-status", "snoozed")
    # The choices say when, in readable dates; the last one asks for a time.
    items = page.locator("#picker-list li")
    await expect(items.nth(2)).to_contain_text("Tomorrow · ")
    await page.fill("#picker-filter", "pick")
    await page.keyboard.press("Enter")
    await page.fill("#snooze-at", "2030-01-02T10:30")
    await expect(page.locator("#snooze-readable")).to_contain_text("10:30")
    await page.click("#snooze-confirm")

    async def snoozed() -> dict | None:
        c = (await api.get(f"/api/v1/conversations/{conv['id']}")).json()
        return c if c["status"] == "snoozed" else None

    c = await eventually(snoozed)
    local = await page.evaluate("new Date('2030-01-02T10:30').toISOString()")
    assert datetime.fromisoformat(c["snoozed_until"]) == datetime.fromisoformat(
        local.replace("Z", "+00:00")
    )
    assert seen.page_errors == []
