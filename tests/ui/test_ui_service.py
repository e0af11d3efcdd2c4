"""Assignment, SLA and CSAT in a real browser: "Take next" in take-from-queue mode, the SLA
countdown next to the service-window countdown (gone once an agent replies), the availability
toggle, the CSAT result on the conversation, and the settings form."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import BrowserContext, expect

from tests.conftest import Owner, Server, eventually
from tests.ui.helpers import new_page, sign_in, wait_conversations, whatsapp_channel, whatsapp_says


async def test_take_next_from_the_queue(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await whatsapp_channel(api, server)
    resp = await api.put(f"/api/v1/inboxes/{owner.inbox_id}/assignment", json={"mode": "manual"})
    assert resp.status_code == 200
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    take = page.locator(".take-next")
    await expect(take).to_have_text("Take next (0 waiting)")
    await expect(take).to_be_disabled()

    await whatsapp_says(server, "4915100000101", "Queued Customer", "Anyone there?", 0)
    await whatsapp_says(server, "4915100000102", "Second Customer", "Me too", 0)
    await expect(take).to_have_text("Take next (2 waiting)")
    await take.click()
    # The oldest waiting conversation opens, assigned to me; one is left.
    await expect(page.locator("#t-name")).to_have_text("Queued Customer")
    await expect(take).to_have_text("Take next (1 waiting)")
    convs = await wait_conversations(api, 2)
    mine = [c for c in convs if c["assignee_id"] == owner.agent_id]
    assert len(mine) == 1
    await expect(page.locator("#list .conv .assignee")).to_have_count(1)
    assert seen.page_errors == [] and seen.console_errors == [] and seen.csp_violations == []


async def test_sla_countdown_availability_and_csat(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await whatsapp_channel(api, server)
    await api.put(f"/api/v1/inboxes/{owner.inbox_id}/sla", json={"first_response_seconds": 3600})
    await api.put(f"/api/v1/inboxes/{owner.inbox_id}/csat", json={"enabled": True})
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")

    await whatsapp_says(server, "4915100000201", "Timed Customer", "Order 12 is late", 0)
    row = page.locator("#list .conv")
    await expect(row).to_have_count(1)
    # Both countdowns: the WhatsApp service window and the SLA target.
    await expect(row.locator(".window.open").first).to_contain_text("closes in")
    sla = row.locator(".window.sla")
    await expect(sla).to_have_text(re.compile(r"^first reply in (59 min|60 min|1 h)$"))

    # The SLA filter.
    await page.select_option("#f-sla", "breached")
    await expect(page.locator("#list .empty")).to_have_text("No conversations here.")
    await page.select_option("#f-sla", "running")
    await expect(row).to_have_count(1)

    # A reply stops the timer: the chip goes.
    await row.click()
    await page.fill("#c-text", "Looking into it now.")
    await page.click("#c-send")
    await expect(page.locator("#messages .msg.out")).to_have_count(1)
    await page.select_option("#f-sla", "")
    await expect(row).to_have_count(1)
    await expect(row.locator(".window.sla")).to_have_count(0)

    # Resolving asks for a rating; the customer's "4" shows on the conversation.
    await page.click("#t-resolve")
    convs = await wait_conversations(api, 1)

    async def asked() -> bool:
        resp = await api.get(f"/api/v1/conversations/{convs[0]['id']}/csat")
        return bool(resp.json()["csat"])

    await eventually(asked)  # the resolve has committed: the question is on its way
    await whatsapp_says(server, "4915100000201", "Timed Customer", "4", 0)

    async def answered() -> bool:
        resp = await api.get(f"/api/v1/conversations/{convs[0]['id']}/csat")
        return resp.json()["csat"]["state"] == "answered"

    await eventually(answered)
    await page.reload()
    await page.wait_for_selector("body[data-ready='1']")
    await page.goto(f"{server.url}/inbox#c/{convs[0]['id']}")
    await expect(page.locator("#t-csat")).to_have_text("CSAT 4/5")

    # Availability: the toggle in the top bar changes what the API reports.
    toggle = page.locator("#availability")
    await expect(toggle).to_have_value("online")
    await toggle.select_option("away")
    await expect(toggle).to_have_attribute("data-state", "away")
    me = (await api.get("/api/v1/agents/me/availability")).json()
    assert me["availability"] == "away"
    assert seen.page_errors == [] and seen.console_errors == [] and seen.csp_violations == []


async def test_settings_form_saves_assignment_sla_and_csat(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/settings#service")
    p = f"#svc-{owner.inbox_id}-"
    await page.select_option(p + "mode", "least_busy")
    await page.fill(p + "capacity", "3")
    await page.fill(p + "first", "15")
    await page.fill(p + "pf-urgent", "5")
    await page.check(p + "csat")
    await page.click(p + "form button[type=submit]")
    await expect(page.locator(p + "form [role=status]")).to_have_text("Saved.")
    a = (await api.get(f"/api/v1/inboxes/{owner.inbox_id}/assignment")).json()
    s = (await api.get(f"/api/v1/inboxes/{owner.inbox_id}/sla")).json()
    c = (await api.get(f"/api/v1/inboxes/{owner.inbox_id}/csat")).json()
    assert (a["mode"], a["capacity"]) == ("least_busy", 3)
    assert s["first_response_seconds"] == 900 and s["next_response_seconds"] is None
    assert s["by_priority"] == {"urgent": {"first_response_seconds": 300}}
    assert c["enabled"] is True
    # A bad value shows the API's sentence and changes nothing.
    await page.fill(p + "capacity", "5000")
    await page.click(p + "form button[type=submit]")
    await expect(page.locator(p + "form .error")).to_contain_text("capacity")
    a = (await api.get(f"/api/v1/inboxes/{owner.inbox_id}/assignment")).json()
    assert a["capacity"] == 3
    assert seen.page_errors == [] and seen.csp_violations == []
