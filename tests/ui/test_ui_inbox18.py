"""Issue 18 in a real browser: the bell (mention, assignment) and @-autocomplete in notes,
Mentions view, the command palette, confirmations with consequences, the offline banner,
phone-width navigation, and the composer's template banner at desktop, tablet and phone sizes."""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Route, expect

from tests.conftest import Owner, Server, eventually
from tests.ui.helpers import (
    add_template,
    api_channel,
    customer_says,
    inbox_agent,
    new_page,
    screenshot,
    sign_in,
    wait_conversations,
    whatsapp_channel,
    whatsapp_says,
)
from tests.ui.test_ui_media import customer, png, settled

SIZES = {"desktop": (1280, 800), "tablet": (768, 1024), "phone": (390, 844)}


async def _bo(api: httpx.AsyncClient, owner: Owner) -> int:
    return await inbox_agent(api, owner)


async def test_mention_autocomplete_and_the_bell(
    server: Server, owner: Owner, api: httpx.AsyncClient, browser: Browser
) -> None:
    await api_channel(api, server, "bell")
    bo_id = await _bo(api, owner)
    await customer_says(server, "bell", "cust-1", "My parcel is late", name="Carl")
    conv = (await wait_conversations(api, 1))[0]

    me_ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    bo_ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        bo, bo_seen = await new_page(bo_ctx)
        await sign_in(bo, server, "bo@example.com", "bo-password-1")
        await expect(bo.locator("#bell-count")).to_be_hidden()
        await bo.click("#bell")
        await expect(bo.locator("#notif-list .empty")).to_contain_text("@mentions you")
        await bo.keyboard.press("Escape")

        me, me_seen = await new_page(me_ctx)
        await sign_in(me, server, "owner@example.com")
        await me.goto(f"{server.url}/inbox#c/{conv['id']}")
        await expect(me.locator("#t-name")).to_have_text("Carl")
        await me.click("#mode-note")
        await me.type("#c-text", "Please check @b")
        # The suggestions name the colleague; Enter inserts their handle.
        options = me.locator("#canned li")
        await expect(options).to_have_count(1)
        await expect(options.first).to_contain_text("Bo Berg")
        await me.keyboard.press("Enter")
        await expect(me.locator("#c-text")).to_have_value("Please check @boberg ")
        await me.keyboard.type("the courier")
        await me.keyboard.press("Control+Enter")
        await expect(me.locator("#messages .msg.note .mention")).to_have_text("@boberg")
        # Assigning Bo notifies Bo too.
        await me.select_option("#t-assignee", str(bo_id))
        await expect(me.locator("#messages .sys")).to_contain_text(["assigned Bo Berg"])

        # Bo's bell counts both, live; the panel says who did what, for which customer.
        await expect(bo.locator("#bell-count")).to_have_text("2")
        await bo.click("#bell")
        items = bo.locator("#notif-list li.notif")
        await expect(items).to_have_count(2)
        await expect(items.nth(0)).to_contain_text("assigned you · Carl")
        await expect(items.nth(1)).to_contain_text("mentioned you · Carl")
        await expect(items.nth(1)).to_contain_text("Please check @boberg the courier")
        await screenshot(bo, "notifications")
        # Arrow keys move in the panel; Enter opens the conversation and reads its notifications.
        await bo.keyboard.press("ArrowDown")
        await bo.keyboard.press("Enter")
        await expect(bo.locator("#t-name")).to_have_text("Carl")
        await expect(bo.locator("#bell-count")).to_be_hidden()
        # The Mentions view lists it for Bo.
        await bo.click(".views button[data-view='mentions']")
        await expect(bo.locator("#list .conv .name")).to_have_text(["Carl"])
        for seen in (bo_seen, me_seen):
            assert (
                seen.page_errors == [] and seen.console_errors == [] and seen.csp_violations == []
            )
            assert seen.dialogs == []
    finally:
        await me_ctx.close()
        await bo_ctx.close()


async def test_command_palette(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await api_channel(api, server, "pal")
    await customer_says(server, "pal", "cust-1", "First question", name="Carl Carlsson")
    await customer_says(server, "pal", "cust-2", "Another question", name="Dina")
    await wait_conversations(api, 2)
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.keyboard.press("Control+k")
    await expect(page.locator("#palette")).to_be_visible()
    await page.keyboard.type("carl")
    active = page.locator("#palette-list li.active")
    await expect(active).to_contain_text("Carl Carlsson")
    await page.keyboard.press("Enter")
    await expect(page.locator("#t-name")).to_have_text("Carl Carlsson")
    # Actions on the open conversation, by words; arrows choose among matches.
    await page.keyboard.press("Control+k")
    await page.keyboard.type("assign to me")
    await expect(active).to_contain_text("Assign to me")
    await page.keyboard.press("Enter")
    await expect(page.locator("#t-assignee")).to_have_value(str(owner.agent_id))
    await page.keyboard.press("Control+k")
    await page.keyboard.type("priority")
    await expect(active).to_contain_text("Set priority urgent")
    await page.keyboard.press("ArrowDown")
    await expect(active).to_contain_text("Set priority high")
    await page.keyboard.press("Enter")
    await expect(page.locator("#t-priority")).to_have_value("high")
    # The server's search finds messages too.
    await page.keyboard.press("Control+k")
    await page.keyboard.type("Another question")
    await expect(page.locator("#palette-list li[role=option]").last).to_contain_text("Dina")
    await screenshot(page, "palette")
    await page.keyboard.press("Escape")
    await expect(page.locator("#palette")).to_be_hidden()
    assert seen.page_errors == [] and seen.console_errors == [] and seen.csp_violations == []


async def test_confirmations_say_what_will_happen(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    made = await api.post("/api/v1/admin/labels", json={"name": "vip", "color": "#ff0000"})
    assert made.status_code == 201, made.text
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/settings#labels")
    row = page.locator("tr", has_text="vip")
    await row.get_by_role("button", name="Delete").click()
    dialog = page.locator("dialog.confirm")
    await expect(dialog.locator("h2")).to_have_text("Delete the label “vip”?")
    await expect(dialog.locator(".consequences li").first).to_contain_text(
        "removed from every conversation"
    )
    # Going back changes nothing.
    await page.click("#confirm-cancel")
    await expect(dialog).to_have_count(0)
    labels = (await api.get("/api/v1/ui/bootstrap")).json()["labels"]
    assert [lb["name"] for lb in labels] == ["vip"]
    await row.get_by_role("button", name="Delete").click()
    await page.click("#confirm-ok")
    await expect(page.locator("tr", has_text="vip")).to_have_count(0)
    labels = (await api.get("/api/v1/ui/bootstrap")).json()["labels"]
    assert labels == []
    assert seen.page_errors == [] and seen.console_errors == [] and seen.csp_violations == []


async def test_offline_banner(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await expect(page.locator("#live.on")).to_have_count(1)
    banner = page.locator("#offline-banner")
    await expect(banner).to_have_count(0)
    await context.set_offline(True)
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("offline")
    await context.set_offline(False)
    await expect(banner).to_be_hidden()
    await expect(page.locator("#live.on")).to_have_count(1)
    assert seen.page_errors == [] and seen.csp_violations == []


async def test_phone_width_navigation(
    server: Server, owner: Owner, api: httpx.AsyncClient, browser: Browser
) -> None:
    await api_channel(api, server, "phone")
    await customer_says(server, "phone", "cust-1", "Hello from a phone", name="Pia")
    await wait_conversations(api, 1)
    ctx = await browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page, seen = await new_page(ctx)
        await sign_in(page, server, "owner@example.com")
        # The page fits: nothing scrolls sideways.
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        nav = page.locator("#top-nav")
        await expect(nav).to_be_hidden()
        await page.click("#nav-toggle")
        await expect(nav.get_by_role("link", name="Settings")).to_be_visible()
        await expect(nav.get_by_role("link", name="Reports")).to_be_visible()
        await page.keyboard.press("Escape")
        await expect(nav).to_be_hidden()
        # The list, then the thread with a way back.
        await page.click("#list .conv")
        await expect(page.locator("#t-name")).to_have_text("Pia")
        await expect(page.locator("#list-pane")).to_be_hidden()
        await expect(page.locator("#c-text")).to_be_visible()
        await screenshot(page, "inbox-phone")
        await page.click("#t-back")
        await expect(page.locator("#list-pane")).to_be_visible()
        # Settings reflow to one column and stay reachable from the menu.
        await page.click("#nav-toggle")
        await nav.get_by_role("link", name="Settings").click()
        await page.wait_for_url(f"{server.url}/settings")
        await expect(page.locator(".settings nav.side")).to_be_visible()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        assert seen.page_errors == [] and seen.console_errors == [] and seen.csp_violations == []
    finally:
        await ctx.close()


@pytest.mark.parametrize("size", list(SIZES))
async def test_composer_banner_and_template_picker(
    size: str, server: Server, owner: Owner, api: httpx.AsyncClient, browser: Browser
) -> None:
    wa: dict[str, Any] = await whatsapp_channel(api, server)
    await add_template(server, owner, wa["id"], "Hi {{first_name}}, order {{order}} has shipped.")
    await whatsapp_says(server, "4915100000009", "Late Customer", "any news?", 30)
    conv = (await wait_conversations(api, 1))[0]
    w, h = SIZES[size]
    ctx = await browser.new_context(viewport={"width": w, "height": h})
    try:
        page, seen = await new_page(ctx)
        await sign_in(page, server, "owner@example.com")
        await page.goto(f"{server.url}/inbox#c/{conv['id']}")
        banner = page.locator("#c-banner")
        await expect(banner).to_contain_text("Window closed — send a template")
        await expect(page.locator("#c-send")).to_be_hidden()
        # One compact picker: the blocked channel says why inside it, no column of lines.
        await expect(page.locator("#c-channel option")).to_have_text(
            ["WhatsApp — can't: window closed — template only"]
        )
        tools = await page.locator(".composer-tools").bounding_box()
        assert tools is not None and tools["height"] < 80, tools
        await page.click("#c-template")
        params = page.locator("#tpl-params input")
        await expect(params).to_have_count(2)
        # Named parameters are labelled by name.
        await expect(page.locator("#tpl-params label").nth(0)).to_contain_text("first name")
        await params.nth(0).fill("Lena")
        await params.nth(1).fill("#4711")
        await expect(page.locator("#tpl-preview")).to_have_text("Hi Lena, order #4711 has shipped.")
        await screenshot(page, f"composer-template-{size}")
        assert seen.page_errors == [] and seen.console_errors == [] and seen.csp_violations == []
    finally:
        await ctx.close()


async def test_thread_opens_at_the_newest_message_when_images_load_late(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await whatsapp_channel(api, server)
    for i in range(14):
        await customer(server, text=f"message number {i}")
    # A tall picture last: it grows the thread after the first layout.
    await customer(
        server,
        type="image",
        mime_type="image/png",
        media_b64=base64.b64encode(png(160, 900)).decode(),
        text="the damaged box",
    )
    [conv] = await wait_conversations(api, 1)
    await settled(api, conv["id"], 15)
    page, seen = await new_page(context)
    # The picture is answered only once the thread is on screen, as on a slow network.
    released = asyncio.Event()

    async def slow(route: Route) -> None:
        await released.wait()
        await route.continue_()

    await page.route("**/api/v1/attachments/*", slow)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/inbox#c/{conv['id']}")
    box = page.locator("#messages")
    await expect(box.locator(".msg.in")).to_have_count(15)
    released.set()
    img = box.locator("figure.att-image img")
    await eventually(lambda: img.evaluate("i => i.complete && i.naturalHeight > 0"))
    # Still at the bottom, with the picture's caption in view.
    gap = await box.evaluate("b => b.scrollHeight - b.scrollTop - b.clientHeight")
    assert gap < 4, gap
    await expect(box.locator(".msg.in .body").last).to_be_in_viewport()
    assert seen.page_errors == [] and seen.csp_violations == []


async def test_saved_view_round_trip(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.click(".views button[data-view='mine']")
    await page.select_option("#f-status", "pending")
    await page.click("#view-save")
    await page.fill("#ask-input", "My pending")
    await page.click("#ask-ok")
    await expect(page.locator("#f-saved")).to_have_value(re.compile(r"^\d+$"))
    saved = (await api.get("/api/v1/views")).json()
    assert [(v["name"], v["filters"]["view"], v["filters"]["status"]) for v in saved] == [
        ("My pending", "mine", "pending")
    ]
    # Choosing it later brings the tab and filters back.
    await page.click(".views button[data-view='all']")
    await page.select_option("#f-status", "open")
    await page.select_option("#f-saved", str(saved[0]["id"]))
    await expect(page.locator(".views button[data-view='mine']")).to_have_attribute(
        "aria-selected", "true"
    )
    await expect(page.locator("#f-status")).to_have_value("pending")
    # Deleting asks first.
    await page.click("#view-delete")
    await expect(page.locator("dialog.confirm h2")).to_have_text("Delete the view “My pending”?")
    await page.click("#confirm-ok")
    await expect(page.locator("#f-saved option")).to_have_text(["No saved views yet"])
    assert (await api.get("/api/v1/views")).json() == []
    assert seen.page_errors == [] and seen.console_errors == [] and seen.dialogs == []
