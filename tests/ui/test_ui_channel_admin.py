"""Settings → Channels and Agents, the profile page (issue 18): edit a channel with errors at
their field, test its connection, disable and delete it after being told what happens to its
conversations; change one's password and preferences; invite an agent who then signs in."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from tests.conftest import Owner, Server
from tests.ui.helpers import (
    PASSWORD,
    api_channel,
    customer_says,
    new_page,
    screenshot,
    sign_in,
    wait_conversations,
)

SIZES = [{"width": 1280, "height": 800}, {"width": 390, "height": 844}]


@pytest.mark.parametrize("size", SIZES, ids=["desktop", "phone"])
async def test_edit_test_disable_delete_channel(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    context: BrowserContext,
    size: dict[str, int],
) -> None:
    channel = await api_channel(api, server, "web")
    await customer_says(server, "web", "visitor-1", "hello", name="Web Visitor")
    await wait_conversations(api, 1)
    page, seen = await new_page(context)
    await page.set_viewport_size(size)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/settings#channels")
    await page.wait_for_selector("body[data-ready='1']")
    row = page.locator(f"#channels-table tr[data-id='{channel['id']}']")

    await row.locator(".ch-edit").click()
    form = page.locator("#channel-edit-form")
    # Human labels; the secret is never shown, and left empty it stays.
    await expect(form.locator("label[for='edit-cfg-webhook_url']")).to_have_text("Webhook URL")
    await expect(form.locator("#edit-cfg-secret")).to_have_value("")
    await form.locator("#edit-cfg-secret").fill("short")
    await form.locator("#edit-name").fill("Website chat")
    await form.locator("button[type=submit]").click()
    error = form.locator("#edit-cfg-secret + .field-error")
    await expect(error).to_contain_text("at least 16 characters")
    if size["width"] > 400:
        await screenshot(page, "settings-channel-edit")
    assert (await api.get(f"/api/v1/channels/{channel['id']}")).json()["name"] == "Website web"
    await form.locator("#edit-cfg-secret").fill("")
    await form.locator("button[type=submit]").click()
    await expect(row.locator("td").first).to_have_text("Website chat")

    await row.locator(".ch-test").click()
    await expect(page.locator("#channel-test")).to_contain_text("no check call")

    await row.locator(".ch-toggle").click()
    await expect(page.locator("#channel-impact")).to_have_text(
        "Website chat has 1 conversation with 1 message."
    )
    await expect(page.locator(".confirm-panel")).to_contain_text("Conversations and messages stay")
    await page.click("#channel-confirm")
    await expect(row.locator(".badge.off")).to_be_visible()
    assert (await api.get(f"/api/v1/channels/{channel['id']}")).json()["active"] is False

    await row.locator(".ch-delete").click()
    await expect(page.locator(".confirm-panel")).to_contain_text("cannot be undone")
    await page.click("#channel-confirm")
    await expect(row).to_have_count(0)
    assert (await api.get(f"/api/v1/channels/{channel['id']}")).status_code == 404
    # The conversation stays.
    assert len((await api.get("/api/v1/conversations?status=open")).json()["data"]) == 1
    assert seen.page_errors == [] and seen.dialogs == []


async def test_connect_form_shows_errors_at_fields_and_guides(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/settings#channels")
    await page.wait_for_selector("body[data-ready='1']")
    await page.select_option("#new-kind", "whatsapp")
    await expect(page.locator("#connect-form .guide-link")).to_have_attribute(
        "href", "/help/channels/whatsapp"
    )
    await expect(page.locator("label[for='cfg-phone_number_id']")).to_have_text("Phone number ID *")
    await page.fill("#new-name", "WA")
    for name in ("phone_number_id", "access_token", "app_secret", "verify_token"):
        await page.fill(f"#cfg-{name}", "x")
    await page.fill("#cfg-api_base_url", "ftp://nope")
    await page.click("#connect-form button[type=submit]")
    await expect(page.locator("#cfg-api_base_url + .field-error")).to_contain_text(
        "must start with http"
    )
    guide = await api.get("/help/channels/whatsapp")
    assert guide.status_code == 200 and guide.headers["content-type"].startswith("text/plain")
    assert (await api.get("/help/channels/..%2Fsecurity")).status_code == 404
    assert (await api.get("/api/v1/channels")).json() == []
    assert seen.page_errors == []


async def test_profile_password_and_invite(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.click("#profile-link")
    await page.wait_for_selector("body[data-ready='1']")
    await page.fill("#p-name", "Olivia Owner")
    await page.select_option("#p-availability", "away")
    await page.click("#details-form button[type=submit]")
    await expect(page.locator("#details-saved")).to_have_text("Saved.")
    await expect(page.locator("#profile-link")).to_have_text("Olivia Owner")
    await page.locator("#notify-form input[name=sound]").uncheck()
    await page.click("#notify-form button[type=submit]")
    await expect(page.locator("#notify-saved")).to_have_text("Saved.")
    me = (await api.get("/api/v1/me/profile")).json()
    assert me["name"] == "Olivia Owner" and me["availability"] == "away"
    assert me["notify"]["sound"] is False and me["notify"]["mentions"] is True
    await screenshot(page, "profile")

    await page.fill("input[name=current_password]", PASSWORD)
    await page.fill("input[name=new_password]", "a new long password")
    await page.fill("input[name=new_password_again]", "a new long password")
    await page.click("#change-password button[type=submit]")
    await expect(page.locator("#change-password .ok")).to_have_text("Password changed.")

    # Invite: the link is shown once; the agent chooses a password there and signs in.
    await page.goto(f"{server.url}/settings#agents")
    await page.wait_for_selector("body[data-ready='1']")
    await page.fill("#i-name", "Nia New")
    await page.fill("#i-email", "nia@example.com")
    await page.click("#invite-form button[type=submit]")
    link = page.locator("#invite-link .copy-link")
    await expect(link).to_have_value(
        re.compile(re.escape(f"{server.url}/reset-password?token=") + ".+")
    )
    url = await link.input_value()
    await expect(page.locator("#agents-table")).to_contain_text("nia@example.com")
    await page.locator("#agents-table tr", has_text="Nia New").locator(".reset-password").click()
    await expect(page.locator("#reset-link .copy-link")).to_have_value(
        re.compile(re.escape(f"{server.url}/reset-password?token=") + ".+")
    )
    url = await page.locator("#reset-link .copy-link").input_value()

    assert context.browser is not None
    other = await context.browser.new_context()
    newcomer, seen2 = await new_page(other)
    await newcomer.goto(url)
    await newcomer.fill("input[name=new_password]", "nia chose this one")
    await newcomer.fill("input[name=new_password_again]", "nia chose this one")
    await newcomer.click("button[type=submit]")
    await newcomer.wait_for_url(f"{server.url}/login")
    await sign_in(newcomer, server, "nia@example.com", "nia chose this one")
    await expect(newcomer.locator("#profile-link")).to_have_text("Nia New")
    await other.close()
    assert seen.page_errors == [] and seen2.page_errors == []
