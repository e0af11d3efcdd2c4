"""Automation in the browser: an admin builds a rule in Settings → Automation, a customer
writes from the WhatsApp simulator, the rule acts and the thread says so; the dry run explains
a rule against that conversation; the business-hours editor saves an inbox's hours."""

from __future__ import annotations

import httpx
from playwright.async_api import BrowserContext, expect

from tests.conftest import Owner, Server, eventually
from tests.ui.helpers import new_page, sign_in, wait_conversations, whatsapp_channel, whatsapp_says


async def test_build_a_rule_and_see_it_act(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await whatsapp_channel(api, server)
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/settings#automation")
    await page.wait_for_selector("#rule-form")

    await page.fill("#rule-name", "Refunds")
    await page.select_option("#rule-event", "message.received")
    await page.click("#add-condition")
    condition = page.locator("#rule-conditions .condition").nth(0)
    await condition.locator(".cond-type").select_option("text_contains")
    await condition.locator(".cond-value").fill("refund, money back")
    action = page.locator("#rule-actions .action").nth(0)
    await action.locator(".act-type").select_option("add_label")
    await action.locator(".act-value").fill("refund")
    await page.click("#add-action")
    note = page.locator("#rule-actions .action").nth(1)
    await note.locator(".act-type").select_option("add_note")
    await note.locator(".act-value").fill("Check the order before refunding.")
    await page.click("#rule-save")
    await expect(page.locator("#rules-table tr[data-id]")).to_have_count(1)
    await expect(page.locator("#rules-table tr[data-id] td").nth(0)).to_have_text("Refunds")
    rules = (await api.get("/api/v1/automation/rules")).json()["data"]
    assert [(r["name"], [a["type"] for a in r["actions"]]) for r in rules] == [
        ("Refunds", ["add_label", "add_note"])
    ]

    # A customer writes on WhatsApp; the rule acts.
    await whatsapp_says(server, "16505550101", "Ana", "Hi, I want my money back please", 0)
    conv = (await wait_conversations(api, 1))[0]

    async def labelled() -> bool:
        got = (await api.get(f"/api/v1/conversations/{conv['id']}")).json()
        return bool(got["labels"] == ["refund"])

    await eventually(labelled, timeout=20)
    await page.goto(f"{server.url}/inbox")
    await page.wait_for_selector("body[data-ready='1']")
    await page.locator("#list .conv").first.click()
    await expect(page.locator("#messages")).to_contain_text("Rule 'Refunds' added label refund")
    await expect(page.locator("#messages .msg.note")).to_contain_text(
        "Check the order before refunding."
    )
    await expect(page.locator("#t-labels .label")).to_have_text(["refund"])

    # The dry run against that conversation, from the builder.
    await page.goto(f"{server.url}/settings#automation")
    await page.wait_for_selector("#rule-form")
    await page.locator("#rules-table tr[data-id] button:has-text('Edit')").click()
    await expect(page.locator("#rule-name")).to_have_value("Refunds")
    await page.fill("#rule-test-conv", str(conv["id"]))
    await page.click("#rule-test")
    await expect(page.locator("#rule-test-verdict")).to_have_text("Matches: the rule would run.")
    await expect(page.locator("#runs-table tr")).to_have_count(2)

    # Business hours for the inbox.
    await page.goto(f"{server.url}/settings#hours")
    await page.wait_for_selector("#bh-form")
    await expect(page.locator("#bh-status")).to_have_text("No hours set: always open.")
    await page.fill("#bh-timezone", "Europe/Paris")
    await page.fill("#bh-mon", "09:00-12:00, 13:00-17:30")
    await page.check("#bh-away-on")
    await page.fill("#bh-away", "We are closed; back at 9.")
    await page.click("#bh-save")
    await expect(page.locator("#bh-status")).not_to_have_text("No hours set: always open.")
    hours = (await api.get(f"/api/v1/inboxes/{owner.inbox_id}/business_hours")).json()
    assert hours["timezone"] == "Europe/Paris"
    assert hours["weekly"]["mon"] == [["09:00", "12:00"], ["13:00", "17:30"]]
    assert hours["away_enabled"] is True
    # A bad entry is refused with the field named, nothing saved.
    await page.fill("#bh-tue", "17:00-09:00")
    await page.click("#bh-save")
    await expect(page.locator("#bh-form .error")).to_contain_text("weekly.tue[0]")
    after = (await api.get(f"/api/v1/inboxes/{owner.inbox_id}/business_hours")).json()
    assert after["weekly"]["tue"] == []

    # The only console line is the browser's note of the refused (422) save above.
    assert seen.page_errors == [] and seen.dialogs == []
    assert [e for e in seen.console_errors if "status of 422" not in e] == []
