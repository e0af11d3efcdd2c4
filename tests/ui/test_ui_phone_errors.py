"""The customer phone shows the sandbox's refusal of a customer id (issue #16, item 13): it
used to be answered 200 with an error body, and the page showed nothing."""

from __future__ import annotations

import httpx
from playwright.async_api import BrowserContext, expect

from tests.conftest import Owner, Server, sandbox_phone_url
from tests.ui.helpers import new_page


async def test_a_refused_customer_id_shows_its_reason_on_the_phone(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    made = await api.post(
        "/api/v1/channels",
        json={
            "kind": "twilio",
            "name": "SMS",
            "config": {
                "account_sid": "AC" + "2" * 32,
                "auth_token": "b" * 32,
                "from_number": "+14155550100",
                "api_base_url": f"{server.url}/sandbox/twilio",
            },
        },
    )
    assert made.status_code == 201, made.text
    phone, seen = await new_page(context)
    await phone.goto(sandbox_phone_url(server))
    await phone.select_option("#channel", label="SMS (twilio)")
    await phone.fill("#user", "ana")
    await phone.dispatch_event("#user", "change")
    await phone.fill("#text", "hello?")
    await phone.click("#send")
    await expect(phone.locator("#phone-error")).to_be_visible()
    await expect(phone.locator("#phone-error")).to_contain_text("E.164")
    assert (await api.get("/api/v1/conversations")).json()["data"] == []

    # A good number clears the error and the message goes.
    await phone.fill("#user", "+14155550123")
    await phone.dispatch_event("#user", "change")
    await phone.fill("#text", "hello?")
    await phone.click("#send")
    await expect(phone.locator("#phone-error")).to_be_hidden()
    await expect(phone.locator("#thread")).to_contain_text("hello?")
    assert seen.page_errors == []
