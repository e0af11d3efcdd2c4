"""The inbox at 1280x800, on a landscape tablet (1024x768) and on a narrow portrait screen
(700x1000): every pane reachable, nothing wider than the screen, the composer on screen."""

from __future__ import annotations

import httpx
from playwright.async_api import BrowserContext, Page, expect

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
