"""Contacts and "New conversation" in the browser (issue 18): find and edit a contact (errors
at their field), start a WhatsApp conversation after the service window closed with a
template, and write first from the inbox with free text — on a desktop and a phone screen."""

from __future__ import annotations

import httpx
from playwright.async_api import BrowserContext, expect

from tests.conftest import Owner, Server, eventually
from tests.ui.helpers import (
    add_template,
    api_channel,
    customer_says,
    new_page,
    screenshot,
    sign_in,
    wait_conversations,
    whatsapp_channel,
    whatsapp_says,
)


async def test_contacts_edit_and_template_after_window(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    wa = await whatsapp_channel(api, server)
    await add_template(server, owner, wa["id"], "Hi {{1}}, order {{2}} has shipped.")
    await whatsapp_says(server, "4915100000003", "Late <b>Customer</b>", "any news?", 30)
    await api_channel(api, server, "web")
    await customer_says(server, "web", "visitor-1", "hello", name="Web Visitor")
    await wait_conversations(api, 2)

    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.click("#contacts-link")
    await page.wait_for_selector("body[data-ready='1']")
    rows = page.locator("#ct-table tbody tr")
    await expect(rows).to_have_count(2)
    await page.select_option("#ct-channel", "whatsapp")
    await expect(rows).to_have_count(1)
    # Customer text stays text.
    await expect(rows.first.locator(".ct-name")).to_have_text("Late <b>Customer</b>")
    await rows.first.click()

    await page.fill("#ct-f-name", "Lena Late")
    await page.fill("#ct-f-phone", "12")
    await page.click("#ct-save")
    phone_error = page.locator("#ct-f-phone + .field-error")
    await expect(phone_error).to_contain_text("not a valid phone number")
    await expect(page.locator("#ct-f-phone")).to_have_attribute("aria-invalid", "true")
    await page.fill("#ct-f-phone", "+49 151 00000003")
    await page.fill("#ct-f-notes", "Asked about order #4711.")
    await page.click("#ct-add-attr")
    await page.locator(".attr-row .attr-name").last.fill("plan")
    await page.locator(".attr-row .attr-value").last.fill("gold")
    await page.click("#ct-save")
    await expect(page.locator("#ct-saved")).to_have_text("Saved.")
    await expect(phone_error).to_have_count(0)
    await expect(rows.first.locator(".ct-name")).to_have_text("Lena Late")
    contacts = (await api.get("/api/v1/contacts/directory?channel=whatsapp")).json()["data"]
    assert contacts[0]["phone"] == "+4915100000003"
    assert contacts[0]["attributes"] == {"plan": "gold"}
    assert contacts[0]["notes"] == "Asked about order #4711."
    await screenshot(page, "contacts")

    # New conversation: WhatsApp's window closed 6 hours ago, so only a template can go.
    await page.click("#ct-write")
    dialog = page.locator("#new-conversation")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator(".nc-channel[data-kind='api']")).to_be_disabled()
    await dialog.locator(".nc-channel[data-kind='whatsapp']").click()
    await expect(dialog.locator("#nc-window")).to_contain_text("service window is closed")
    await expect(dialog.locator("#nc-template option")).to_have_text(["order_update (en)"])
    params = dialog.locator(".nc-param")
    await params.nth(0).fill("Lena")
    await params.nth(1).fill("#4711")
    await expect(dialog.locator("#nc-preview")).to_have_text("Hi Lena, order #4711 has shipped.")
    await screenshot(page, "new-conversation-template")
    await dialog.locator("#nc-send-template").click()
    await page.wait_for_url(f"{server.url}/inbox#c/*")
    out = page.locator("#messages .msg.out .body")
    await expect(out).to_have_text(["Hi Lena, order #4711 has shipped."])

    async def sent() -> list:
        convs = (await api.get("/api/v1/conversations")).json()["data"]
        msgs = []
        for c in convs:
            msgs += (await api.get(f"/api/v1/conversations/{c['id']}/messages")).json()["data"]
        return [m for m in msgs if m["direction"] == "out" and m["status"] != "queued"]

    done = await eventually(sent)
    assert [(m["kind"], m["status"]) for m in done] in (
        [("template", "sent")],
        [("template", "delivered")],
        [("template", "read")],
    )
    assert seen.page_errors == [] and seen.dialogs == []


async def test_new_conversation_from_the_inbox_on_a_phone(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await api_channel(api, server, "web")
    await customer_says(server, "web", "visitor-2", "earlier question", name="Mia Web")
    conv = (await wait_conversations(api, 1))[0]
    await api.patch(f"/api/v1/conversations/{conv['id']}", json={"status": "resolved"})

    page, seen = await new_page(context)
    await page.set_viewport_size({"width": 390, "height": 844})
    await sign_in(page, server, "owner@example.com")
    await page.click("#new-conversation-button")
    dialog = page.locator("#new-conversation")
    await dialog.locator("#nc-search").fill("Mia")
    await dialog.locator(".nc-pick", has_text="Mia Web").click()
    await dialog.locator(".nc-channel[data-kind='api']").click()
    await expect(dialog.locator(".nc-window.open")).to_be_visible()
    await dialog.locator("#nc-text").fill("Following up on your question")
    box = await dialog.bounding_box()
    assert box is not None and box["width"] <= 390
    await dialog.locator("#nc-send").click()
    await expect(page.locator("#messages .msg.out .body")).to_have_text(
        ["Following up on your question"]
    )
    # A new thread beside the resolved one (as a customer writing after resolution gets).
    convs = (await api.get("/api/v1/conversations")).json()["data"]
    assert [c["status"] for c in convs] == ["open", "resolved"] and convs[1]["id"] == conv["id"]

    # The Contacts page on the phone: list, then the contact with a way back.
    await page.goto(f"{server.url}/contacts")
    await page.wait_for_selector("body[data-ready='1']")
    await page.locator("#ct-table tbody tr").first.click()
    await expect(page.locator("#ct-detail-name")).to_have_text("Mia Web")
    await expect(page.locator(".ct-list")).to_be_hidden()
    await screenshot(page, "contacts-phone")
    await page.click(".ct-back")
    await expect(page.locator(".ct-list")).to_be_visible()
    assert seen.page_errors == [] and seen.dialogs == []


async def test_contacts_csv_import_in_the_browser(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext, tmp_path
) -> None:
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/contacts")
    await page.wait_for_selector("body[data-ready='1']")
    await expect(page.locator("#ct-status")).to_contain_text("No contacts yet")
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("name,phone,plan\nAnn,+33612345678,gold\nBad,12,x\n", encoding="utf-8")
    await page.set_input_files("#ct-import", str(csv_file))
    await expect(page.locator("#ct-import-result")).to_contain_text(
        "1 new, 0 updated, 1 rows skipped"
    )
    await expect(page.locator("#ct-import-errors li")).to_have_text(
        [
            r"line 3: phone: not a valid phone number; write it with the country code (+49 151 …) "
            "or set the workspace's default region"
        ]
    )
    await expect(page.locator("#ct-table tbody tr")).to_have_count(1)
    assert seen.page_errors == []


async def test_campaign_audience_picked_from_contacts(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    channel = await api_channel(api, server, "web")
    for user, name in (("u-1", "Ada Pick"), ("u-2", "Ben Skip"), ("u-3", "Cy Pick")):
        await customer_says(server, "web", user, "hi", name=name)
    await wait_conversations(api, 3)
    page, seen = await new_page(context)
    await page.set_viewport_size({"width": 390, "height": 844})
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/campaigns")
    await page.wait_for_selector("body[data-ready='1']")
    await page.click("#new-campaign")
    await page.fill("#c-name", "Picked")
    await page.locator(f"#c-channels input[value='{channel['id']}']").check()
    await page.click("#c-pick-contacts")
    picker = page.locator("#contact-picker")
    await picker.locator("#cp-q").fill("Pick")
    await expect(picker.locator("#cp-list li")).to_have_count(2)
    await picker.locator("#cp-all").click()
    await expect(picker.locator("#cp-count")).to_have_text("2 chosen")
    await picker.locator("#cp-done").click()
    ids = sorted(
        c["id"] for c in (await api.get("/api/v1/contacts/directory?q=Pick")).json()["data"]
    )
    await expect(page.locator("#c-contacts")).to_have_value(
        ", ".join(map(str, sorted(ids, reverse=True)))
    )
    # The audience step saves the draft; the message step counts the two chosen.
    await page.click("#c-next")
    await expect(page.locator("#c-reach-count")).to_have_text("2")

    async def saved() -> list:
        return (await api.get("/api/v1/campaigns")).json()

    campaigns = await eventually(saved)
    assert sorted(campaigns[0]["audience"]["contact_ids"]) == ids
    assert seen.page_errors == []
