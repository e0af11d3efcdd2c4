"""Real Meta payload shapes in the browser (issue #16, items 4 and 5): a Messenger location
shows as a place with a map link of its coordinates, as WhatsApp's does; an Instagram
attachment Meta could not hand over (`unsupported_type`) shows as unsupported, never as a
file to open."""

from __future__ import annotations

import httpx
from playwright.async_api import BrowserContext, expect

from tests.channels.test_meta_fixtures import _channel, _post, _settled
from tests.conftest import Owner, Server
from tests.ui.helpers import new_page, sign_in, wait_conversations


async def test_messenger_location_and_instagram_unsupported_in_the_thread(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    messenger = await _channel(server, api, "messenger")
    instagram = await _channel(server, api, "instagram")
    await _post(str(messenger["webhook_url"]), "messenger", "location")
    await _post(str(instagram["webhook_url"]), "instagram", "unsupported_type")
    events = await _settled(api, 2)
    assert [(e["state"], e["error"]) for e in events] == [("done", None)] * 2
    convs = await wait_conversations(api, 2)
    by_channel = {c["last_channel_id"]: c for c in convs}

    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/inbox#c/{by_channel[messenger['id']]['id']}")
    place = page.locator("#messages .msg.in .body")
    await expect(place).to_contain_text("📍 Brandenburger Tor")
    link = place.locator("a")
    await expect(link).to_have_text("52.51628, 13.37770")
    href = await link.get_attribute("href")
    assert href is not None and href.startswith("https://www.openstreetmap.org/?mlat=52.516275")
    # The provider's own redirect URL is never made a link.
    assert "l.facebook.com" not in (await place.inner_html())

    await page.goto(f"{server.url}/inbox#c/{by_channel[instagram['id']]['id']}")
    message = page.locator("#messages .msg.in")
    await expect(message.locator(".body")).to_have_text("[unsupported]")
    await expect(message.locator("a, img, video, audio")).to_have_count(0)
    assert seen.page_errors == [] and seen.console_errors == []
