"""An agent composing a reply shows "typing…" on the customer's WhatsApp (the sandbox phone),
via WhatsApp's typing indicator on the customer's last message; the reply ends it."""

from __future__ import annotations

import httpx
from playwright.async_api import BrowserContext, expect

from tests.conftest import Owner, Server, sandbox_phone_url
from tests.ui.helpers import new_page, sign_in, wait_conversations, whatsapp_channel


async def test_agent_typing_shows_on_the_customer_phone(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await whatsapp_channel(api, server)
    phone, phone_seen = await new_page(context)
    await phone.goto(sandbox_phone_url(server))
    await phone.select_option("#channel", label="WhatsApp (whatsapp)")
    await phone.fill("#user", "+4915177770000")
    await phone.dispatch_event("#user", "change")
    await phone.fill("#text", "hello, anyone there?")
    await phone.click("#send")
    await wait_conversations(api, 1)
    await expect(phone.locator("#typing")).to_be_hidden()

    inbox, inbox_seen = await new_page(context)
    await sign_in(inbox, server, "owner@example.com")
    await inbox.locator("#list .conv").first.click()
    await inbox.click("#c-text")
    await inbox.keyboard.type("Yes, ")
    await expect(phone.locator("#typing")).to_be_visible()
    await expect(phone.locator("#typing")).to_have_text("business is typing…")

    await inbox.keyboard.type("how can I help?")
    await inbox.keyboard.press("Control+Enter")
    await expect(phone.locator("#thread .msg")).to_contain_text(
        ["hello, anyone there?", "Yes, how can I help?"]
    )
    await expect(phone.locator("#typing")).to_be_hidden()
    assert phone_seen.page_errors == [] and inbox_seen.page_errors == []
