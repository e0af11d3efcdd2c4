"""The inbox at 1280x800, on a landscape tablet (1024x768) and on a narrow portrait screen
(700x1000): every pane reachable, nothing wider than the screen, the composer on screen. And the
pages issue 18 added (Contacts, New conversation, channel edit, profile, settings edits) on a
portrait tablet (768x1024)."""

from __future__ import annotations

import httpx
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.conftest import Owner, Server
from tests.ui.helpers import api_channel, customer_says, new_page, sign_in, wait_conversations


async def no_horizontal_overflow(page: Page) -> bool:
    return bool(
        await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    )


async def composer_on_screen(page: Page, height: int) -> bool:
    await expect(page.locator("#c-text")).to_be_visible()
    box = await page.locator("#c-text").bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height


async def test_desktop_tablet_and_narrow_layouts(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await api_channel(api, server, "tablet")
    await customer_says(server, "tablet", "tab-1", "Is the blue one in stock?", name="Tara Tablet")
    await wait_conversations(api, 1)
    page, seen = await new_page(context)

    # 1280x800: three panes side by side, no drawer button.
    await page.set_viewport_size({"width": 1280, "height": 800})
    await sign_in(page, server, "owner@example.com")
    await page.locator("#list .conv").first.click()
    await expect(page.locator("#contact-pane")).to_be_visible()
    await expect(page.locator("#contact-pane")).to_contain_text("Tara Tablet")
    await expect(page.locator("#t-contact")).to_be_hidden()
    assert await no_horizontal_overflow(page)
    assert await composer_on_screen(page, 800)

    # Landscape tablet: list + thread; the contact panel opens as a drawer and closes again.
    await page.set_viewport_size({"width": 1024, "height": 768})
    await expect(page.locator("#contact-pane")).to_be_hidden()
    await expect(page.locator("#list-pane")).to_be_visible()
    await page.click("#t-contact")
    await expect(page.locator("#contact-pane")).to_be_visible()
    await expect(page.locator("#contact-pane")).to_contain_text("Tara Tablet")
    await expect(page.locator("#t-contact")).to_have_attribute("aria-expanded", "true")
    await page.click("#contact-close")
    await expect(page.locator("#contact-pane")).to_be_hidden()
    await expect(page.locator("#t-contact")).to_have_attribute("aria-expanded", "false")
    await page.click("#t-contact")
    await expect(page.locator("#contact-pane")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(page.locator("#contact-pane")).to_be_hidden()
    assert await no_horizontal_overflow(page)
    assert await composer_on_screen(page, 768)
    # A reply works at this size.
    await page.fill("#c-text", "Yes, two left.")
    await page.keyboard.press("Control+Enter")
    await expect(page.locator("#messages")).to_contain_text("Yes, two left.")

    # Narrow portrait: the list, then the thread alone, then back to the list.
    await page.set_viewport_size({"width": 700, "height": 1000})
    await page.click("#t-back")
    await expect(page.locator("#list-pane")).to_be_visible()
    await expect(page.locator("#thread-pane")).to_be_hidden()
    await page.locator("#list .conv").first.click()
    await expect(page.locator("#thread-pane")).to_be_visible()
    await expect(page.locator("#list-pane")).to_be_hidden()
    await expect(page.locator("#messages")).to_contain_text("Is the blue one in stock?")
    assert await no_horizontal_overflow(page)
    assert await composer_on_screen(page, 1000)
    await page.click("#t-back")
    await expect(page.locator("#list-pane")).to_be_visible()
    assert seen.page_errors == []


async def usable(page: Page, selector: str) -> None:
    """On screen once scrolled to, inside the screen's width, and enabled."""
    target = page.locator(selector)
    await target.scroll_into_view_if_needed()
    await expect(target).to_be_visible()
    await expect(target).to_be_enabled()
    box = await target.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 768, (selector, box)


async def test_issue18_pages_on_a_portrait_tablet(
    server: Server, owner: Owner, api: httpx.AsyncClient, browser: Browser
) -> None:
    """768x1024: Contacts, New conversation, channel edit, profile and the settings edits
    (canned reply, label, business hours) fit the screen and their controls work."""
    channel = await api_channel(api, server, "tablet")
    await customer_says(server, "tablet", "tab-1", "Is the blue one in stock?", name="Tara Tablet")
    await wait_conversations(api, 1)
    await api.post("/api/v1/admin/canned_replies", json={"short_code": "hi", "content": "Hello!"})
    await api.post("/api/v1/admin/labels", json={"name": "vip", "color": "#aa0000"})
    ctx = await browser.new_context(viewport={"width": 768, "height": 1024})
    try:
        page, seen = await new_page(ctx)
        await sign_in(page, server, "owner@example.com")

        # Contacts (through the menu, which the top bar folds into at this width): the list
        # and the contact, the form saves.
        await page.click("#nav-toggle")
        await page.click("#contacts-link")
        await page.wait_for_selector("body[data-ready='1']")
        await usable(page, "#ct-q")
        await usable(page, "#ct-new-conv")
        await page.locator("#ct-table tbody tr").first.click()
        await expect(page.locator("#ct-detail-name")).to_have_text("Tara Tablet")
        await usable(page, "#ct-f-name")
        await page.fill("#ct-f-notes", "Wants the blue one.")
        await usable(page, "#ct-save")
        await page.click("#ct-save")
        await expect(page.locator("#ct-saved")).to_have_text("Saved.")
        assert await no_horizontal_overflow(page)

        # New conversation from the contact, inside the screen, sends.
        await page.click("#ct-write")
        dialog = page.locator("#new-conversation")
        await dialog.locator(".nc-channel[data-kind='api']").click()
        await usable(page, "#nc-text")
        box = await dialog.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 768, box
        assert await no_horizontal_overflow(page)
        await page.fill("#nc-text", "Yes, two left.")
        await usable(page, "#nc-send")
        await page.click("#nc-send")
        await expect(page.locator("#messages .msg.out .body")).to_have_text(["Yes, two left."])
        assert await no_horizontal_overflow(page)

        # Channel edit.
        await page.goto(f"{server.url}/settings#channels")
        await page.wait_for_selector("body[data-ready='1']")
        row = page.locator(f"#channels-table tr[data-id='{channel['id']}']")
        await usable(page, f"#channels-table tr[data-id='{channel['id']}'] .ch-edit")
        await row.locator(".ch-edit").click()
        await usable(page, "#edit-name")
        await page.fill("#edit-name", "Shop chat")
        await usable(page, "#channel-edit-form button[type=submit]")
        await page.click("#channel-edit-form button[type=submit]")
        await expect(row.locator("td").first).to_have_text("Shop chat")
        assert await no_horizontal_overflow(page)

        # Settings edits: a canned reply and a label in place, business hours on the grid.
        await page.click("nav.side a[href='#canned']")
        await usable(page, "#canned-table .row-edit")
        await page.click("#canned-table .row-edit")
        await page.fill("#canned-table .edit-content", "Hello there!")
        await usable(page, "#canned-table .row-save")
        await page.click("#canned-table .row-save")
        await expect(page.locator("#canned-table td").nth(1)).to_have_text("Hello there!")
        assert await no_horizontal_overflow(page)
        await page.click("nav.side a[href='#labels']")
        await usable(page, "#labels-table .row-edit")
        await page.click("#labels-table .row-edit")
        await page.fill("#labels-table .edit-name", "very-important")
        await usable(page, "#labels-table .row-save")
        await page.click("#labels-table .row-save")
        await expect(page.locator("#labels-table .label")).to_have_text("very-important")
        assert await no_horizontal_overflow(page)
        await page.click("nav.side a[href='#hours']")
        monday = page.locator(".day-row").first
        await usable(page, ".day-row .day-open >> nth=0")
        await monday.locator(".day-open").check()
        await usable(page, ".day-row .day-to >> nth=0")
        await monday.locator(".day-from").fill("08:30")
        await monday.locator(".day-to").fill("16:00")
        await usable(page, "#bh-save")
        await page.click("#bh-save")
        await expect(page.locator("#bh-status")).not_to_have_text("No hours set: always open.")
        assert await no_horizontal_overflow(page)

        # Profile (the menu's own entry at this width): details and password forms.
        await page.click("#nav-toggle")
        await page.click("#top-nav .nav-profile")
        await page.wait_for_selector("body[data-ready='1']")
        await usable(page, "#p-name")
        await page.fill("#p-name", "Olivia Owner")
        await usable(page, "#details-form button[type=submit]")
        await page.click("#details-form button[type=submit]")
        await expect(page.locator("#details-saved")).to_have_text("Saved.")
        await usable(page, "#change-password button[type=submit]")
        assert await no_horizontal_overflow(page)
        assert seen.page_errors == [] and seen.console_errors == [] and seen.csp_violations == []
    finally:
        await ctx.close()
