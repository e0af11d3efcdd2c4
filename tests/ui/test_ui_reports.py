"""Reports in the browser: after customers write through the API-channel simulator and an
agent answers and resolves, the Reports page (reached from the nav) shows the same numbers as
the data: tiles, the per-channel table, the agents table; filters narrow them; the CSV export
links download what the page shows."""

from __future__ import annotations

import csv
import io

import httpx
from playwright.async_api import BrowserContext, expect

from tests.conftest import Owner, Server, eventually
from tests.ui.helpers import (
    api_channel,
    customer_says,
    new_page,
    screenshot,
    sign_in,
    wait_conversations,
)
from tidings.reports import rollup


async def test_reports_page_shows_the_simulated_traffic(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    web = await api_channel(api, server, "shop")
    for user, name in (("u1", "Ana"), ("u2", "Bo"), ("u3", "Cy")):
        await customer_says(server, "shop", user, f"hello from {name}", name=name)
    convs = sorted(await wait_conversations(api, 3), key=lambda c: c["id"])
    for conv in convs[:2]:
        r = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hi!"})
        assert r.status_code == 201, r.text
    r = await api.patch(
        f"/api/v1/conversations/{convs[0]['id']}",
        json={"status": "resolved", "assignee_id": owner.agent_id, "labels": ["vip"]},
    )
    assert r.status_code == 200, r.text

    async def settled() -> bool:
        return await rollup.pending(server.runtime) == 0

    await eventually(settled, timeout=20)

    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    seen.console_errors.clear()
    await page.click(".top nav a:has-text('Reports')")
    await page.wait_for_url(f"{server.url}/reports")
    await page.wait_for_selector("body[data-ready='1']")
    await expect(page.locator("#t-new")).to_have_text("3")
    await expect(page.locator("#t-resolved")).to_have_text("1")
    await expect(page.locator("#t-backlog")).to_have_text("2")
    await expect(page.locator("#t-waiting")).to_have_text("1")  # Cy has had no answer
    await expect(page.locator("#chart-conversations rect")).to_have_count(2)  # today: new, resolved

    # A label filter narrows everything to Ana's conversation.
    await page.select_option("#f-label", label="vip")
    await page.click("#f-apply")
    await expect(page.locator("#t-new")).to_have_text("1")
    await expect(page.locator("#t-backlog")).to_have_text("0")
    await page.select_option("#f-label", value="")
    await page.click("#f-apply")
    await expect(page.locator("#t-new")).to_have_text("3")

    await page.click("nav.side a[data-tab='channels']")
    row = page.locator(f"#channels-table tr[data-key='{web['id']}'] td")
    await expect(row.nth(0)).to_have_text(web["name"])
    await expect(row.nth(1)).to_have_text("3")  # in
    await expect(row.nth(2)).to_have_text("2")  # out
    await expect(page.locator("#t-messages")).to_have_text("5")
    await expect(page.locator("#chart-channels rect")).to_have_count(1)
    await screenshot(page, "reports-channels")

    await page.click("nav.side a[data-tab='agents']")
    me = page.locator(f"#agents-table tr[data-key='{owner.agent_id}'] td")
    await expect(me.nth(1)).to_have_text("1")  # conversations
    await expect(me.nth(2)).to_have_text("1")  # resolved
    await page.click("nav.side a[data-tab='campaigns']")
    await expect(page.locator("#no-campaigns")).to_be_visible()

    # The export links download, with the page's session, what the page shows.
    await page.click("nav.side a[data-tab='channels']")
    await page.wait_for_selector("#channels-table")
    href = await page.locator("#export-report").get_attribute("href")
    assert href is not None and "format=csv" in href
    got = await page.request.get(f"{server.url}{href}")
    assert got.status == 200
    rows = list(csv.DictReader(io.StringIO(await got.text())))
    assert [(r["channel_id"], r["messages_in"], r["messages_out"]) for r in rows] == [
        (str(web["id"]), "3", "2")
    ]
    href = await page.locator("#export-conversations").get_attribute("href")
    assert href is not None
    got = await page.request.get(f"{server.url}{href}")
    rows = list(csv.DictReader(io.StringIO(await got.text())))
    assert sorted(int(r["conversation_id"]) for r in rows) == [c["id"] for c in convs]
    assert seen.console_errors == []


async def test_csat_and_sla_section(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    """A missed 1-second first-response target and a "5" to the survey show in Reports →
    CSAT & SLA: tiles, the distribution and the agent by name."""
    await api_channel(api, server, "care")
    inbox = owner.inbox_id
    assert (await api.put(f"/api/v1/inboxes/{inbox}/csat", json={"enabled": True})).is_success
    assert (
        await api.put(f"/api/v1/inboxes/{inbox}/sla", json={"first_response_seconds": 1})
    ).is_success
    await customer_says(server, "care", "u1", "Is anyone there?", name="Ana")
    conv = (await wait_conversations(api, 1))[0]

    async def breached() -> bool:
        return bool((await api.get("/api/v1/sla/breaches")).json()["data"])

    await eventually(breached)
    r = await api.patch(
        f"/api/v1/conversations/{conv['id']}",
        json={"status": "resolved", "assignee_id": owner.agent_id},
    )
    assert r.status_code == 200, r.text

    async def survey(state: str) -> bool:
        got = (await api.get(f"/api/v1/conversations/{conv['id']}/csat")).json()["csat"]
        return bool(got) and got["state"] == state

    await eventually(lambda: survey("asked"))
    await customer_says(server, "care", "u1", "5", name="Ana")
    await eventually(lambda: survey("answered"))

    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/reports#service")
    await page.wait_for_selector("body[data-ready='1']")
    await expect(page.locator("#t-csat-average")).to_have_text("5.0 / 5")
    await expect(page.locator("#t-csat-satisfied")).to_have_text("100.0 %")
    await expect(page.locator("#t-sla-breaches")).to_have_text("1")
    await expect(page.locator("#csat-distribution tr[data-key='5'] td").nth(1)).to_have_text("1")
    agents = (await api.get("/api/v1/admin/agents")).json()
    me = next(a for a in agents if a["id"] == owner.agent_id)
    row = page.locator(f"#service-agents-table tr[data-key='{owner.agent_id}'] td")
    await expect(row.nth(0)).to_have_text(me["name"])
    await expect(page.locator("#chart-service rect")).to_have_count(2)
    href = await page.locator("#export-report").get_attribute("href")
    assert href is not None and href.startswith("/api/v1/reports/service?")
    assert seen.page_errors == [] and seen.console_errors == [] and seen.csp_violations == []
