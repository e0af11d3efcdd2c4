"""Campaign honesty as an agent sees it (issue #16, item 11), the parts the campaign page test
does not cover: the counts line says what the per-channel table says; a pause holds (the
simulator and the page stop moving); the conversations a campaign opens carry the CSV's name
and their channel's badge, are not snoozed, and can be answered on SMS before the customer
writes; and they are not "new conversations" in Reports."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from playwright.async_api import BrowserContext, Page, expect

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.factories import twilio_channel
from tests.ui.helpers import api_channel, customer_says, new_page, sign_in, wait_conversations
from tidings.reports import rollup
from tidings.storage.models import Contact

NUMBERS = ["+14155550171", "+14155550172", "+14155550173"]
STATES = ["queued", "sent", "delivered", "read", "failed", "skipped"]


async def _sms_sent(server: Server) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/twilio"
    ) as tw:
        sent: list[dict[str, Any]] = (await tw.get("/_sim/sent")).json()
    return sent


async def _counts_line(page: Page) -> dict[str, int]:
    line = page.locator("#c-counts")
    return {
        s: int(await line.locator(f"[data-state={s}] b").inner_text()) for s in ("pending", *STATES)
    }


def _held_and_gone(line: dict[str, int]) -> tuple[int, int]:
    """(messages still held in the outbox, messages that left it) from a counts line."""
    held = line["pending"] + line["queued"]
    return held, line["sent"] + line["delivered"] + line["read"] + line["failed"]


async def test_campaign_conversations_are_honest_in_inbox_page_and_reports(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    sms = await twilio_channel(api, server, name="SMS line")
    # One recipient was known by number only (an earlier import): the CSV names her.
    async with server.runtime.db.write() as s:
        s.add(
            Contact(
                workspace_id=owner.workspace_id, name=None, phone_e164=NUMBERS[0], attributes={}
            )
        )
    c = (
        await api.post(
            "/api/v1/campaigns",
            json={
                "name": "Restock",
                "content": {"text": "Hi {{first_name}}, it's back"},
                "channel_ids": [sms["id"]],
            },
        )
    ).json()
    csv = "phone,name\n" + f"{NUMBERS[0]},Mara Kim\n{NUMBERS[1]},Joe Bell\n{NUMBERS[2]},Li Wu\n"
    up = await api.post(
        f"/api/v1/campaigns/{c['id']}/audience/csv",
        content=csv.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert up.json()["added"] == 3, up.text

    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/campaigns#c/{c['id']}")
    await expect(page.locator("body[data-live='1']")).to_have_count(1)
    await page.click("#c-launch")
    await page.click("#confirm-ok")  # the launch confirmation (count and cost)
    await expect(page.locator("#c-state")).to_have_text("completed", timeout=60_000)

    # The counts line and the per-channel table are one answer (they disagreed). Receipts go
    # on after `completed`: compared once every SMS is delivered, when nothing moves any more.
    await expect(page.locator("#c-counts [data-state=delivered] b")).to_have_text("3")
    delivered_cell = STATES.index("delivered") + 1
    sms_row = page.locator("#report-channels tr", has_text="SMS line")
    await expect(sms_row.locator("td").nth(delivered_cell)).to_have_text("3")
    line = await _counts_line(page)
    cells = page.locator("#report-channels tr", has_text="SMS line").locator("td")
    row = [await cells.nth(i).inner_text() for i in range(await cells.count())]
    assert row[0] == "SMS line"
    table = dict(zip(STATES, (int(v) for v in row[1:-1]), strict=True))
    assert line.pop("pending") == 0
    assert table == line, (table, line)
    assert int(row[-1]) == sum(line.values()) == 3

    recipients = (await api.get(f"/api/v1/campaigns/{c['id']}/recipients")).json()["data"]
    mara = next(r for r in recipients if r["address"] == NUMBERS[0])

    # The inbox: the conversation waits for her reply — not snoozed, named by the CSV, with the
    # SMS channel's badge (it showed "?" and "Customer #id").
    await page.goto(f"{server.url}/inbox")
    await page.wait_for_selector("body[data-ready='1']")
    await page.select_option("#f-status", "any")
    conv_row = page.locator("#list .conv", has_text="Mara Kim")
    await expect(conv_row).to_have_count(1)
    badge = conv_row.locator(".ch")
    await expect(badge).to_have_attribute("class", "ch ch-twilio")
    await expect(badge).to_have_attribute("title", "SMS line")
    await expect(conv_row.locator(".status")).not_to_have_text("snoozed")
    await expect(page.locator("#list .conv .status-snoozed")).to_have_count(0)
    await conv_row.click()
    await expect(page.locator("#t-name")).to_have_text("Mara Kim")
    await expect(page.locator("#t-status")).not_to_have_value("snoozed")
    conv = (await api.get(f"/api/v1/conversations/{mara['conversation_id']}")).json()
    assert conv["snoozed_until"] is None, conv

    # Her number is an identity of hers: the composer can answer on SMS before she writes
    # (it said "SMS line — can't: no identity").
    option = page.locator("#c-channel option", has_text="SMS line")
    await expect(option).to_have_count(1)
    await expect(option).not_to_contain_text("can't")
    await page.fill("#c-text", "Shall we keep one for you?")
    await expect(page.locator("#c-send")).to_be_enabled()
    await page.click("#c-send")
    await expect(page.locator("#messages .msg.out .body").last).to_have_text(
        "Shall we keep one for you?"
    )

    async def answered() -> bool:
        return any(
            dict(m["params"]).get("Body") == "Shall we keep one for you?"
            and dict(m["params"]).get("To") == NUMBERS[0]
            for m in await _sms_sent(server)
        )

    await eventually(answered, timeout=20)

    # Reports: three conversations were opened by the campaign, none of them is new work.
    async def settled() -> bool:
        return await rollup.pending(server.runtime) == 0

    await eventually(settled, timeout=20)
    await page.goto(f"{server.url}/reports")
    await page.wait_for_selector("body[data-ready='1']")
    await expect(page.locator("#t-new")).to_have_text("0")
    assert seen.page_errors == [] and seen.console_errors == []


async def test_pause_holds_on_the_page_and_at_the_provider(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    """After Pause the sent count went 75 → 104 within 3 s. Once the messages already claimed
    for sending have left, nothing more reaches the simulator and the page's counts hold."""
    channel = await api_channel(api, server, "acme")
    for i in range(10):
        await customer_says(server, "acme", f"hold-{i}", "hi", name=f"Hold {i}")
    contacts = [conv["contact_id"] for conv in await wait_conversations(api, 10)]
    c = (
        await api.post(
            "/api/v1/campaigns",
            json={
                "name": "Held",
                "content": {"text": "Hello"},
                "audience": {"contact_ids": contacts},
                "channel_ids": [channel["id"]],
                "rate_per_second": 1,
            },
        )
    ).json()
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/campaigns#c/{c['id']}")
    await page.click("#c-launch")
    await page.click("#confirm-ok")  # the launch confirmation (count and cost)
    await expect(page.locator("#c-state")).to_have_text("running")

    async def received() -> int:
        async with httpx.AsyncClient(
            base_url=f"{server.url}/sandbox/api", headers=sandbox_headers(server)
        ) as sim:
            got = (await sim.get("/_sim/received", params={"account": "acme"})).json()
        return sum(1 for m in got if m["text"] == "Hello")

    async def one_received() -> bool:
        return await received() >= 1

    await eventually(one_received, timeout=20)
    await page.click("#c-pause")
    await expect(page.locator("#c-state")).to_have_text("paused")

    async def nothing_in_flight() -> bool:
        outbox = (await api.get(f"/api/v1/campaigns/{c['id']}")).json()["outbox"]
        return bool(outbox["in_flight"] == 0)

    await eventually(nothing_in_flight, timeout=10)
    await page.reload()
    await expect(page.locator("#c-state")).to_have_text("paused")
    at_pause, shown = await received(), _held_and_gone(await _counts_line(page))
    # At 1 message a second, three seconds running on would add about three. (Receipts of
    # what had left may still move a message from sent to read: not counted here.)
    await asyncio.sleep(3)
    assert await received() == at_pause
    assert _held_and_gone(await _counts_line(page)) == shown == (10 - at_pause, at_pause)
    assert at_pause < 10
    await page.click("#c-resume")
    await expect(page.locator("#c-state")).to_have_text("completed", timeout=60_000)
    assert await received() == 10
    assert seen.page_errors == [] and seen.console_errors == []
