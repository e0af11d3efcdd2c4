"""Issue 18's "Done when", as one browser walk: a new user on the README's run setup (the demo
workspace and its sandbox channels, signed in with the demo login `scripts/run` prints)
connects and edits a channel, starts a conversation from Contacts, sends a template after the
WhatsApp window closed, is notified of a colleague's @mention and sends a campaign to a label —
on a desktop and on a phone-width screen, where every page is reached through the phone menu.

Everything the user does goes through the pages; the API is only read to check what they saw.
The customer is played on the sandbox's phone page, opened from the menu's "Customer phone"."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.conftest import Server, free_port, make_settings, serving
from tests.ui.helpers import new_page, screenshot, sign_in
from tests.web.test_web_access import signed_in
from tidings.actions.admin import bootstrap
from tidings.simulators.sandbox import create_demo_channels

# scripts/run's demo login (README, "The two commands").
DEMO_EMAIL = "demo@tidings.local"
DEMO_PASSWORD = "tidings-demo"
SIZES = {"phone": (390, 844), "desktop": (1280, 800)}
SAM_PHONE = "+14155550123"


async def demo_workspace(server: Server) -> None:
    """What `tidings bootstrap --demo` does for scripts/run: the owner and the sandbox channels."""
    made = await bootstrap(server.runtime, DEMO_EMAIL, DEMO_PASSWORD)
    await create_demo_channels(server.runtime, made["workspace_id"], made["agent_id"])


async def fits(page: Page) -> None:
    """Nothing scrolls sideways."""
    width, inner = await page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert width <= inner, f"{page.url}: {width} px wide on a {inner} px screen"


async def go(page: Page, phone: bool, link: str) -> None:
    """Open a page from the top navigation; at phone width through the menu button."""
    nav = page.locator("#top-nav")
    if phone:
        await expect(nav).to_be_hidden()
        await page.click("#nav-toggle")
        await expect(page.locator("#nav-toggle")).to_have_attribute("aria-expanded", "true")
    else:
        await expect(page.locator("#nav-toggle")).to_be_hidden()
    await nav.get_by_role("link", name=link).click()
    await page.wait_for_selector("body[data-ready='1']")
    await fits(page)


async def open_phone(context: BrowserContext, page: Page, phone: bool) -> Page:
    """The customer phone, opened (in a new tab) from the menu's link."""
    if phone:
        await page.click("#nav-toggle")
    async with context.expect_page() as opened:
        await page.locator("#top-nav").get_by_role("link", name="Customer phone").click()
    customer = await opened.value
    await expect(customer.locator("#channel option")).not_to_have_count(0)
    if phone:
        await page.keyboard.press("Escape")
    return customer


async def customer_writes(customer: Page, channel: str, user: str, name: str, text: str) -> None:
    await customer.select_option("#channel", label=channel)
    await customer.fill("#user", user)
    await customer.fill("#name", name)
    await customer.fill("#text", text)
    await customer.click("#send")
    await expect(customer.locator("#thread .msg.in")).to_contain_text([text])


async def open_conversation(page: Page, name: str) -> None:
    """Open a customer's conversation from the list (the All tab). The tab reloads the list:
    the click on the row waits for that answer, so it cannot land on a row being replaced."""
    async with page.expect_response(
        lambda r: "/api/v1/ui/conversations?" in r.url and "limit=30" in r.url
    ):
        await page.click(".views button[data-view='all']")
    await expect(page.locator(".views button[data-view='all']")).to_have_attribute(
        "aria-selected", "true"
    )
    await page.locator("#list .conv", has_text=name).click()
    await expect(page.locator("#t-name")).to_have_text(name)


async def connect_and_edit_a_channel(server: Server, page: Page, phone: bool) -> None:
    await go(page, phone, "Settings")
    await expect(page.locator("#channels-table")).to_contain_text("WhatsApp (sandbox)")
    await page.select_option("#new-kind", "telegram")
    await page.fill("#new-name", "Telegram bot")
    await page.fill("#cfg-bot_token", "123456789:walkthrough-bot-token")
    await page.fill("#cfg-secret_token", "walkthrough-secret")
    # No provider account needed: the form offers the sandbox's Telegram.
    await expect(page.locator("#cfg-api_base_url")).to_have_value("https://api.telegram.org")
    await page.click("#use-sandbox")
    await expect(page.locator("#cfg-api_base_url")).to_have_value(f"{server.url}/sandbox/telegram")
    await expect(page.locator("#connect-form")).not_to_contain_text("null")
    await page.click("#connect-form button[type=submit]")
    await expect(page.locator(".notice")).to_contain_text("Connected Telegram bot")
    made = page.locator("#channels-table tr[data-id]", has_text="Telegram bot")
    await expect(made).to_have_count(1)
    row = page.locator(f"#channels-table tr[data-id='{await made.get_attribute('data-id')}']")
    await expect(page.locator("#setup-webhook")).to_contain_text("/webhooks/telegram/")
    await fits(page)

    # Its Delete button reads (it was red on red where contacts.css recoloured the text).
    colours = await row.locator(".ch-delete").evaluate(
        "b => [getComputedStyle(b).color, getComputedStyle(b).backgroundColor]"
    )
    assert colours[0] != colours[1], colours
    await row.locator(".ch-edit").click()
    form = page.locator("#channel-edit-form")
    await expect(form.locator("#edit-name")).to_have_value("Telegram bot")
    await form.locator("#edit-name").fill("Telegram help desk")
    await form.locator("button[type=submit]").click()
    await expect(row.locator("td").first).to_have_text("Telegram help desk")


async def start_a_conversation_from_contacts(
    page: Page, customer: Page, phone: bool, width: int
) -> None:
    await go(page, phone, "Contacts")
    await page.click("#ct-add")
    await page.fill("#ct-n-name", "Sam Sms")
    await page.fill("#ct-n-phone", SAM_PHONE)
    await page.click("#ct-new-form button[type=submit]")
    await expect(page.locator("#ct-detail-name")).to_have_text("Sam Sms")
    await page.click("#ct-write")
    dialog = page.locator("#new-conversation")
    await expect(dialog).to_be_visible()
    await dialog.locator(".nc-channel[data-kind='twilio']").click()
    await expect(dialog.locator(".nc-window.open")).to_contain_text("you can write freely")
    box = await dialog.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    await dialog.locator("#nc-text").fill("Hi Sam, your table for two is booked for Friday.")
    await dialog.locator("#nc-send").click()
    await page.wait_for_url(re.compile(r"/inbox#c/\d+$"))
    await expect(page.locator("#t-name")).to_have_text("Sam Sms")
    await expect(page.locator("#messages .msg.out .body")).to_have_text(
        ["Hi Sam, your table for two is booked for Friday."]
    )
    # The customer's phone receives it.
    await customer.select_option("#channel", label="SMS via Twilio (sandbox) (twilio)")
    await customer.fill("#user", SAM_PHONE)
    await customer.fill("#name", "Sam Sms")
    await expect(customer.locator("#thread .msg.out")).to_contain_text(
        ["Hi Sam, your table for two is booked for Friday."]
    )


async def template_after_the_window_closed(page: Page, customer: Page, phone: bool) -> None:
    await customer_writes(
        customer,
        "WhatsApp (sandbox) (whatsapp)",
        "+4915112345678",
        "Ana Lima",
        "Where is my order?",
    )
    await go(page, phone, "Inbox")
    await expect(page.locator("#list .conv", has_text="Ana Lima")).to_have_count(1)
    # The customer's last message is now 25 hours old: the service window is closed.
    await customer.click("#age-window")
    await expect(customer.locator("#age-result")).to_contain_text("25 h old")
    await open_conversation(page, "Ana Lima")
    await expect(page.locator("#c-banner")).to_contain_text("Window closed — send a template")
    await expect(page.locator("#c-send")).to_be_hidden()
    await page.click("#c-template")
    # The demo business account's approved templates, synced at start.
    await page.select_option("#tpl-select", label="order_update (en, utility)")
    params = page.locator("#tpl-params input")
    await expect(params).to_have_count(2)
    await params.nth(0).fill("Ana")
    await params.nth(1).fill("#4711")
    shown = "Hi Ana, your order #4711 has shipped. Reply here with any question."
    await expect(page.locator("#tpl-preview")).to_have_text(shown)
    await page.click("#tpl-send")
    await expect(page.locator("#messages .msg.out .body")).to_have_text([shown])
    await expect(customer.locator("#thread .msg.out")).to_contain_text([shown])


async def colleague_mentions_me(server: Server, browser: Browser, page: Page, phone: bool) -> None:
    # The owner adds a colleague and puts them in the Support inbox.
    await go(page, phone, "Settings")
    await page.click("nav.side a[href='#agents']")
    await page.fill("#a-name", "Bo Berg")
    await page.fill("#a-email", "bo@example.com")
    await page.fill("#a-password", "bo-password-1")
    await page.click("#agent-form button[type=submit]")
    await expect(page.locator("#agents-table")).to_contain_text("bo@example.com")
    await page.click("nav.side a[href='#inboxes']")
    group = page.locator("form.group", has_text="Support")
    await group.locator("label:has-text('Bo Berg') input").check()
    await group.locator("button[type=submit]").click()
    await expect(page.locator(".notice")).to_have_text("Saved Support.")
    await go(page, phone, "Inbox")
    await expect(page.locator("#bell-count")).to_be_hidden()

    bo_ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        bo, bo_seen = await new_page(bo_ctx)
        await sign_in(bo, server, "bo@example.com", "bo-password-1")
        await open_conversation(bo, "Ana Lima")
        await bo.click("#mode-note")
        await bo.type("#c-text", "@dem")
        await expect(bo.locator("#canned li")).to_have_count(1)
        await bo.keyboard.press("Enter")
        await bo.keyboard.type("can you call Ana about the delivery?")
        await bo.keyboard.press("Control+Enter")
        await expect(bo.locator("#messages .msg.note .mention")).to_have_text("@demo")
        assert bo_seen.page_errors == []
    finally:
        await bo_ctx.close()

    # The bell counts it, live; opening it goes to the conversation.
    await expect(page.locator("#bell-count")).to_have_text("1")
    await page.click("#bell")
    item = page.locator("#notif-list li.notif")
    await expect(item).to_have_count(1)
    await expect(item).to_contain_text("mentioned you · Ana Lima")
    await expect(item).to_be_in_viewport()
    await item.click()
    await expect(page.locator("#t-name")).to_have_text("Ana Lima")
    await expect(page.locator("#messages .msg.note")).to_contain_text(
        "can you call Ana about the delivery?"
    )
    await expect(page.locator("#bell-count")).to_be_hidden()


async def label_a_conversation(page: Page, name: str, label: str) -> None:
    await open_conversation(page, name)
    await page.locator("#t-labels button", has_text="label").click()
    await page.fill("#picker-filter", label)
    await page.keyboard.press("Enter")
    await expect(page.locator("#t-labels .label")).to_have_text([label])


async def send_campaign_to_label(page: Page, phone: bool, label: str, text: str) -> None:
    """The campaign editor's three steps: audience (with its reach), message, preview; then a
    confirmed launch and the campaign's progress."""
    await go(page, phone, "Campaigns")
    await page.click("#new-campaign")
    await page.fill("#c-name", "VIP evening")
    await page.locator("#c-channels label", has_text="SMS via Twilio").locator("input").check()
    await page.locator("#c-labels label", has_text=label).locator("input").check()
    await page.click("#c-count")
    await expect(page.locator("#c-reach-count")).to_have_text("1")
    await page.click("#c-next")
    await expect(page.locator("#c-steps li.current")).to_have_attribute("data-step", "message")
    await page.fill("#c-text", text)
    await expect(page.locator("#sms-meter")).to_contain_text("1 segment")
    await page.click("#c-next")
    await expect(page.locator("#c-steps li.current")).to_have_attribute("data-step", "preview")
    await expect(page.locator("#p-recipients .v")).to_have_text("1")
    await expect(page.locator("#preview-list li")).to_have_count(1)
    await page.click("#c-launch")
    await expect(page.locator("dialog.confirm")).to_contain_text("to 1 recipient")
    await page.click("#confirm-ok")
    await expect(page.locator("#c-state")).to_have_text("completed")
    await expect(page.locator("#c-progress")).to_contain_text("100%")
    await fits(page)


@pytest.mark.parametrize("size", list(SIZES))
async def test_new_user_walkthrough(size: str, server: Server, browser: Browser) -> None:
    await demo_workspace(server)
    width, height = SIZES[size]
    phone = size == "phone"
    ctx = await browser.new_context(viewport={"width": width, "height": height})
    try:
        page, seen = await new_page(ctx)
        await sign_in(page, server, DEMO_EMAIL, DEMO_PASSWORD)
        await fits(page)
        # An empty inbox says where conversations come from.
        await expect(page.locator("#list .empty-help")).to_contain_text("open the customer phone")
        if phone:
            # The top bar folds its pages into a menu; Escape folds it again.
            await page.click("#nav-toggle")
            await expect(
                page.locator("#top-nav").get_by_role("link", name="Contacts")
            ).to_be_visible()
            await screenshot(page, "phone-menu")
            await page.keyboard.press("Escape")
            await expect(page.locator("#top-nav")).to_be_hidden()
        customer = await open_phone(ctx, page, phone)

        await connect_and_edit_a_channel(server, page, phone)
        # The connected channel works: the phone tab lists it (no reload) under its new name, a
        # customer writes on it and the inbox shows it.
        await customer_writes(
            customer, "Telegram help desk (telegram)", "424242", "Tom Tele", "Hi from Telegram"
        )
        await go(page, phone, "Inbox")
        await open_conversation(page, "Tom Tele")
        await expect(page.locator("#messages .msg.in .body")).to_have_text(["Hi from Telegram"])

        await start_a_conversation_from_contacts(page, customer, phone, width)
        await template_after_the_window_closed(page, customer, phone)
        await colleague_mentions_me(server, browser, page, phone)

        await go(page, phone, "Inbox")
        await label_a_conversation(page, "Sam Sms", "vip")
        await send_campaign_to_label(
            page, phone, "vip", "Hi {{first_name}}, VIP evening on Friday!"
        )
        await customer.select_option("#channel", label="SMS via Twilio (sandbox) (twilio)")
        await customer.fill("#user", SAM_PHONE)
        await expect(customer.locator("#thread .msg.out")).to_contain_text(
            ["Hi Sam, VIP evening on Friday!"]
        )
        assert seen.page_errors == [] and seen.console_errors == [] and seen.csp_violations == []
        assert seen.dialogs == []
    finally:
        await ctx.close()


async def settings_page(server: Server) -> str:
    client = await signed_in(server, DEMO_EMAIL, DEMO_PASSWORD)
    try:
        resp = await client.get("/settings")
    finally:
        await client.aclose()
    assert resp.status_code == 200 and 'id="settings-main"' in resp.text
    return resp.text


async def test_use_the_sandbox_is_offered_only_with_the_sandbox_on(
    server: Server, database_url: str, tmp_path: Path
) -> None:
    """The settings page carries the simulators' base URL (the connect form's "use the
    sandbox") only when the sandbox is mounted."""
    await bootstrap(server.runtime, DEMO_EMAIL, DEMO_PASSWORD)
    assert f'data-sandbox-url="{server.url}/sandbox"' in await settings_page(server)
    # The same database served with the sandbox off.
    settings = make_settings(database_url, tmp_path / "off", free_port(), sandbox=False)
    async with serving(settings) as off:
        assert "data-sandbox-url" not in await settings_page(off)
