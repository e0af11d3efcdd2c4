"""Team assignment: from the thread header, from a bulk selection and through the REST API;
the list shows the team and filters by it; each change leaves a system event in the thread."""

from __future__ import annotations

import httpx
from playwright.async_api import BrowserContext, expect

from tests.conftest import Owner, Server, eventually
from tests.ui.helpers import api_channel, customer_says, new_page, sign_in, wait_conversations


async def test_assign_a_team_from_the_thread_and_in_bulk(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    billing = (await api.post("/api/v1/admin/teams", json={"name": "Billing"})).json()
    sales = (await api.post("/api/v1/admin/teams", json={"name": "Sales"})).json()
    await api_channel(api, server, "teams")
    for i in range(3):
        await customer_says(server, "teams", f"t-{i}", f"<b>question</b> {i}", name=f"Customer {i}")
    await wait_conversations(api, 3)

    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await expect(page.locator("#list .conv")).to_have_count(3)
    await page.locator("#list .conv").first.click()
    await page.select_option("#t-team", label="Billing")
    await expect(page.locator("#thread")).to_contain_text("assigned team Billing")
    await expect(page.locator("#list .conv .team")).to_have_text(["⚑ Billing"])

    async def one_billing() -> list[dict[str, object]] | None:
        rows = (await api.get(f"/api/v1/ui/conversations?team_id={billing['id']}")).json()["data"]
        return rows if len(rows) == 1 else None

    (conv,) = await eventually(one_billing)
    assert conv["team_id"] == billing["id"]

    # The list filter: only the Billing conversation remains.
    await page.select_option("#f-team", label="Billing")
    await expect(page.locator("#list .conv")).to_have_count(1)
    await page.select_option("#f-team", label="Any team")
    await expect(page.locator("#list .conv")).to_have_count(3)

    # Bulk: two picked rows go to Sales.
    await page.locator("#list .conv .pick").nth(1).check()
    await page.locator("#list .conv .pick").nth(2).check()
    await page.click("#bulk-team")
    await page.keyboard.type("Sales")
    await page.keyboard.press("Enter")
    await expect(page.locator("#bulk-done")).to_have_text("Updated 2 conversations.")
    data = (await api.get(f"/api/v1/ui/conversations?team_id={sales['id']}")).json()["data"]
    assert len(data) == 2
    assert conv["id"] not in {c["id"] for c in data}
    assert seen.page_errors == []


async def test_team_through_the_rest_api(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    team = (await api.post("/api/v1/admin/teams", json={"name": "Support L2"})).json()
    await api_channel(api, server, "teams-api")
    await customer_says(server, "teams-api", "u1", "hello")
    (conv,) = await wait_conversations(api, 1)
    resp = await api.patch(f"/api/v1/conversations/{conv['id']}", json={"team_id": team["id"]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["team_id"] == team["id"]
    # Another change leaves the team alone; an unknown team is refused and changes nothing.
    resp = await api.patch(f"/api/v1/conversations/{conv['id']}", json={"status": "pending"})
    assert resp.json()["team_id"] == team["id"]
    resp = await api.patch(f"/api/v1/conversations/{conv['id']}", json={"team_id": 999999})
    assert resp.status_code == 422
    assert "team_id" in resp.json()["error"]["message"]
    after = (await api.get(f"/api/v1/conversations/{conv['id']}")).json()
    assert after["team_id"] == team["id"] and after["status"] == "pending"
    resp = await api.patch(f"/api/v1/conversations/{conv['id']}", json={"team_id": None})
    assert resp.json()["team_id"] is None
