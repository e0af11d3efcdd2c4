"""Issue 18 item 5 in a real browser: an admin builds a macro in Settings → Macros from the
rule builder's action rows, an agent runs it from the command palette on the open
conversation, and deleting it asks first."""

from __future__ import annotations

import httpx
from playwright.async_api import BrowserContext, expect

from tests.conftest import Owner, Server
from tests.ui.helpers import api_channel, customer_says, new_page, sign_in, wait_conversations


async def test_macro_created_in_settings_runs_from_palette(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await api_channel(api, server, "mac")
    await customer_says(server, "mac", "cust-1", "I want my money back", name="Carl")
    conv = (await wait_conversations(api, 1))[0]
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")

    await page.goto(f"{server.url}/settings#macros")
    await expect(page.locator("#macros-empty")).to_be_visible()
    # A macro cannot call a webhook: the rule builder's rows offer everything else.
    first = page.locator("#macro-actions .rule-row").nth(0)
    await expect(first.locator(".act-type option[value='webhook']")).to_have_count(0)
    await page.fill("#macro-name", "Refund triage")
    await first.locator(".act-type").select_option("set_priority")
    await first.locator(".act-value").select_option("urgent")
    await page.click("#macro-add-action")
    second = page.locator("#macro-actions .rule-row").nth(1)
    await second.locator(".act-type").select_option("add_label")
    await second.locator(".act-value").fill("refund")
    await page.click("#macro-save")
    row = page.locator("#macros-table tr", has_text="Refund triage")
    await expect(row.locator("ol.steps li")).to_have_count(2)
    stored = (await api.get("/api/v1/macros")).json()
    assert [(m["name"], [a["type"] for a in m["actions"]]) for m in stored] == [
        ("Refund triage", ["set_priority", "add_label"])
    ]

    # In the inbox: open Carl, then run the macro by name from the palette.
    await page.goto(f"{server.url}/")
    await expect(page.locator("#list .conv")).to_have_count(1)
    await page.keyboard.press("Control+k")
    await expect(page.locator("#palette")).to_be_visible()
    await page.keyboard.type("carl")
    await page.keyboard.press("Enter")
    await expect(page.locator("#t-name")).to_have_text("Carl")
    await page.keyboard.press("Control+k")
    await page.keyboard.type("refund triage")
    await expect(page.locator("#palette-list li.active")).to_contain_text(
        "Run macro: Refund triage"
    )
    await page.keyboard.press("Enter")
    await expect(page.locator("#t-priority")).to_have_value("urgent")
    got = (await api.get(f"/api/v1/ui/conversations/{conv['id']}")).json()
    assert got["priority"] == "urgent", got
    assert "refund" in [lb if isinstance(lb, str) else lb["name"] for lb in got["labels"]], got

    # Deleting asks first and says what happens; going ahead removes it.
    await page.goto(f"{server.url}/settings#macros")
    await (
        page.locator("#macros-table tr", has_text="Refund triage")
        .get_by_role("button", name="Delete")
        .click()
    )
    dialog = page.locator("dialog.confirm")
    await expect(dialog.locator(".consequences li").first).to_contain_text("command palette")
    await page.click("#confirm-ok")
    await expect(page.locator("#macros-empty")).to_be_visible()
    assert (await api.get("/api/v1/macros")).json() == []
    assert seen.page_errors == [] and seen.console_errors == [] and seen.csp_violations == []
