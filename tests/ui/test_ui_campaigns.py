"""Campaigns in the browser: create one from a CSV upload (bad rows reported), see the SMS
counter and the preview with segments and cost, launch it, watch the progress bar reach 100 %
live (no reload), read the report and download the per-recipient CSV."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, expect

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.factories import twilio_channel
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

GOOD = [f"+1415555013{i}" for i in range(6)]
CSV = (
    "phone,name,code\n"
    f"{GOOD[0]},Ana Lima,A1\n"
    f"{GOOD[1]},Bo Berg,B2\n"
    "not-a-number,Cy,C3\n"
    f"{GOOD[2]},Di,D4\n"
    f"{GOOD[0]},Ana again,A1\n"
    f"{GOOD[3]},Ed,E5\n"
    f"{GOOD[4]},Flo,F6\n"
    f"{GOOD[5]},Gus,G7\n"
).encode()


async def test_campaign_from_csv_runs_live_to_100_percent_and_reports(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext, tmp_path: Path
) -> None:
    sms_id = (await twilio_channel(api, server, name="SMS line"))["id"]

    page, seen = await new_page(context)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    await sign_in(page, server, "owner@example.com")
    await page.click(".top nav a:has-text('Campaigns')")
    await page.wait_for_url(f"{server.url}/campaigns")
    await page.wait_for_selector("body[data-ready='1']")
    failed.clear()  # what the inbox page loaded (until we left it) is its own business
    seen.console_errors.clear()
    await expect(page.locator("#no-campaigns")).to_be_visible()
    await page.click("#new-campaign")
    await expect(page.locator("#campaign-form")).to_be_visible()

    # Step 1, the audience: name, channel, the CSV; "Next" saves the draft and adds the CSV.
    await expect(page.locator("#c-steps li.current")).to_have_attribute("data-step", "audience")
    await page.fill("#c-name", "Spring sale")
    await page.locator(f"#c-channels input[value='{sms_id}']").check()
    await page.set_input_files(
        "#c-csv", files=[{"name": "list.csv", "mimeType": "text/csv", "buffer": CSV}]
    )
    await screenshot(page, "campaign-editor-audience")
    await page.click("#c-next")

    # Step 2, the message: the CSV's bad rows reported by row number, the audience counted
    # (8 rows, 6 reachable by SMS, 2 skipped).
    await expect(page.locator("#c-steps li.current")).to_have_attribute("data-step", "message")
    await expect(page.locator("#csv-report")).to_contain_text(
        "8 rows, 6 added, 6 new contacts, 1 invalid, 1 duplicates"
    )
    await expect(page.locator("#csv-report li")).to_have_count(2)
    await expect(page.locator("#csv-report")).to_contain_text("row 4: 'not-a-number'")
    await expect(page.locator("#csv-report")).to_contain_text(f"row 6: {GOOD[0]} is a duplicate")
    await expect(page.locator("#c-reach-count")).to_have_text("8")
    await expect(page.locator(f"#c-reach [data-channel='{sms_id}'] b")).to_have_text("6")
    await expect(page.locator("#c-reach")).to_contain_text("2 skipped")
    campaign = (await api.get("/api/v1/campaigns")).json()[0]
    assert campaign["name"] == "Spring sale" and campaign["state"] == "draft"
    assert campaign["content"] == {}  # saved before its message
    assert page.url.endswith(f"#edit/{campaign['id']}/message")
    # One channel kind in use: no per-channel variants, no WhatsApp template.
    await expect(page.locator("#c-variants")).to_have_count(0)
    await expect(page.locator("#c-template")).to_have_count(0)
    await page.fill("#c-text", "Hi {{first_name}}, your code is {{code}}")
    # The live SMS counter (POST /api/v1/sms/preview).
    await expect(page.locator("#sms-meter")).to_contain_text("SMS: 1 segment · GSM-7")
    await page.fill("#c-text", "Hi {{first_name}} 🌷, your code is {{code}}")
    await expect(page.locator("#sms-meter")).to_contain_text("UCS-2")
    await page.fill("#c-text", "Hi {{first_name}}, your code is {{code}}")
    await expect(page.locator("#sms-meter")).to_contain_text("GSM-7")
    await page.click("#c-sending-toggle")
    await page.fill("#c-rate", "2")
    await screenshot(page, "campaign-editor-message")
    await page.click("#c-next")

    # Step 3, the preview: the server's plan, per recipient, with SMS segments and the cost.
    await expect(page.locator("#c-steps li.current")).to_have_attribute("data-step", "preview")
    assert (await api.get(f"/api/v1/campaigns/{campaign['id']}")).json()["rate_per_second"] == 2.0
    await expect(page.locator("#p-recipients .v")).to_have_text("8")
    await expect(page.locator("#p-skipped .v")).to_have_text("2")
    await expect(page.locator("#p-segments .v")).to_have_text("6")
    await expect(page.locator("#p-cost .v")).to_have_text("0.0474 USD")  # 6 segments at US 0.0079
    ana = page.locator("#preview-list li", has_text="Hi Ana, your code is A1")
    await expect(ana).to_contain_text("Ana Lima")
    await expect(ana).to_contain_text("1 × GSM-7")
    await expect(ana).to_contain_text(GOOD[0])
    await expect(ana.locator(".pc-how")).to_have_text("Text")
    await expect(page.locator("#preview-list")).to_contain_text("Not sent: invalid number")
    await screenshot(page, "campaign-editor-preview")

    # Launch, and watch the bar move with no reload: a marker on the window survives, and the
    # bar is seen below 100 before it reaches 100.
    await page.evaluate(
        """() => {
          window.__noReload = true;
          window.__seen = [];
          const note = () => {
            const bar = document.querySelector('#c-progress [role=progressbar]');
            if (bar) window.__seen.push(Number(bar.getAttribute('aria-valuenow')));
          };
          new MutationObserver(note).observe(document.getElementById('campaigns-main'),
            { childList: true, subtree: true, attributes: true });
        }"""
    )
    await expect(page.locator("body[data-live='1']")).to_have_count(1)
    # Launch asks first, saying how many recipients and what it costs.
    await page.click("#c-launch")
    confirm = page.locator("dialog.confirm")
    await expect(confirm).to_contain_text("to 6 recipients now")
    await expect(confirm).to_contain_text("6 via SMS line")
    await expect(confirm).to_contain_text("Estimated cost: 0.0474 USD (6 SMS segments)")
    await expect(confirm).to_contain_text("2 skipped")
    await page.click("#confirm-cancel")
    assert (await api.get(f"/api/v1/campaigns/{campaign['id']}")).json()["state"] == "draft"
    await page.click("#c-launch")
    await page.click("#confirm-ok")
    await page.wait_for_url(f"**#c/{campaign['id']}")
    bar = page.locator("#c-progress [role=progressbar]")
    await expect(bar).to_have_attribute("aria-valuenow", "100", timeout=60_000)
    await expect(page.locator("#c-progress")).to_contain_text("100% · 8 / 8")
    assert await page.evaluate("window.__noReload") is True
    seen_values = await page.evaluate("window.__seen")
    assert any(v < 100 for v in seen_values) and seen_values[-1] == 100, seen_values
    await expect(page.locator("#c-state")).to_have_text("completed")

    # The report: rates, cost, failures grouped by reason, per-recipient CSV.
    await expect(page.locator("#r-delivery .v")).to_have_text("100%")
    await expect(page.locator("#r-cost .v")).to_have_text("0.0474")
    failures = page.locator("#report-failures")
    await expect(failures.locator("tr", has_text="invalid_number")).to_contain_text("1")
    await expect(failures.locator("tr", has_text="duplicate_in_audience")).to_contain_text("1")
    await expect(page.locator("#report-channels")).to_contain_text("SMS line")
    await screenshot(page, "campaign-report")
    async with page.expect_download() as info:
        await page.click("#c-export")
    download = await info.value
    target = tmp_path / "export.csv"
    await download.save_as(target)
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 8
    assert sorted(r["state"] for r in rows) == ["delivered"] * 6 + ["skipped"] * 2
    assert {r["address"] for r in rows if r["state"] == "delivered"} == set(GOOD)

    # The list shows it finished, also live-updated markup (no reload needed).
    await page.click("nav.side a[href='#list']")
    row = page.locator(f"#campaigns-table tr[data-id='{campaign['id']}']")
    await expect(row.locator(".c-state")).to_have_text("completed")
    await expect(row.locator("[role=progressbar]")).to_have_attribute("aria-valuenow", "100")

    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/twilio"
    ) as tw:
        sent = (await tw.get("/_sim/sent")).json()
    assert sorted(dict(m["params"])["To"] for m in sent) == sorted(GOOD)
    assert failed == []
    assert not seen.page_errors and not seen.console_errors and not seen.csp_violations
    assert not seen.dialogs


async def test_campaign_page_is_honest_about_draft_progress_state_and_fallbacks(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    """A draft shows its audience, not a share done; the state says `completed` only once no
    message is queued; every recipient that went by the SMS fallback counts as a fallback, and
    the fallback channel is named."""
    sms = await twilio_channel(api, server, name="SMS line")
    wa = await whatsapp_channel(api, server)
    c = (
        await api.post(
            "/api/v1/campaigns",
            json={
                "name": "Fallback sale",
                "content": {"text": "Hi {{first_name}}"},
                "channel_ids": [wa["id"]],
                # Numbers from a CSV have no WhatsApp window and there is no template: SMS.
                "fallback": {"to_channel_id": sms["id"], "on_window_closed": True},
                "rate_per_second": 1,
            },
        )
    ).json()
    up = await api.post(
        f"/api/v1/campaigns/{c['id']}/audience/csv",
        content=(
            "phone,name\nnot-a-number,X\n" + "".join(f"{g},N{i}\n" for i, g in enumerate(GOOD[:3]))
        ).encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert up.json()["added"] == 3

    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/campaigns#list")
    await page.wait_for_selector("body[data-ready='1']")
    row = page.locator(f"#campaigns-table tr[data-id='{c['id']}']")
    # A draft with one bad CSV row skipped said "25% · 1 / 4": it has no progress.
    await expect(row.locator(".c-progress")).to_have_text("not launched")
    await expect(row.locator("[role=progressbar]")).to_have_count(0)
    await page.goto(f"{server.url}/campaigns#c/{c['id']}")
    await expect(page.locator("#c-progress")).to_have_text("not launched · 4 in the audience")
    await expect(page.locator("#c-progress [role=progressbar]")).to_have_count(0)
    await expect(page.locator("#c-fallback")).to_have_text("SMS line")  # not "channel #2"

    # Every change of the page is sampled: the state shown and the queued count next to it.
    await page.evaluate(
        """() => {
          window.__samples = [];
          const note = () => {
            const st = document.querySelector('#c-state [data-state]');
            const q = document.querySelector('#c-counts [data-state=queued] b');
            const p = document.querySelector('#c-counts [data-state=pending] b');
            if (st && q && p) window.__samples.push([st.dataset.state, Number(q.textContent) + Number(p.textContent)]);
          };
          new MutationObserver(note).observe(document.getElementById('campaigns-main'),
            { childList: true, subtree: true, characterData: true });
        }"""
    )
    await expect(page.locator("body[data-live='1']")).to_have_count(1)
    await page.click("#c-launch")
    await expect(page.locator("dialog.confirm")).to_contain_text("to 3 recipients now")
    await page.click("#confirm-ok")
    await expect(page.locator("#c-state")).to_have_text("completed", timeout=60_000)
    samples = await page.evaluate("window.__samples")
    assert any(state == "running" for state, _left in samples), samples
    assert not [s for s in samples if s[0] == "completed" and s[1] > 0], samples
    await expect(page.locator("#c-progress")).to_contain_text("100% · 4 / 4")
    await expect(page.locator("#r-fallbacks .v")).to_have_text("3")  # it said 0
    await expect(page.locator("#c-fallbacks b")).to_have_text("3")  # beside the counts too
    await expect(page.locator("#c-fallback")).to_have_text("SMS line")
    sms_row = page.locator("#report-channels tr", has_text="SMS line")
    await expect(sms_row.locator("td").last).to_have_text("3")
    await screenshot(page, "campaign-fallbacks")
    assert not seen.page_errors and not seen.console_errors and not seen.csp_violations


async def test_pause_says_what_is_held_and_what_was_already_sending(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    channel = await api_channel(api, server, "acme")
    for i in range(8):
        await customer_says(server, "acme", f"cust-{i}", "hi", name=f"Cust {i}")
    contacts = [c["contact_id"] for c in (await wait_conversations(api, 8))]
    c = (
        await api.post(
            "/api/v1/campaigns",
            json={
                "name": "Slow one",
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
    await page.click("#confirm-ok")
    await expect(page.locator("#c-state")).to_have_text("running")
    await expect(page.locator("#c-outbox")).to_contain_text("being sent")

    async def one_sent() -> bool:
        counts = (await api.get(f"/api/v1/campaigns/{c['id']}")).json()["counts"]
        return bool(counts["sent"] + counts["delivered"] + counts["read"] >= 1)

    await eventually(one_sent, timeout=20)
    await page.click("#c-pause")
    await expect(page.locator("#c-state")).to_have_text("paused")
    notice = page.locator("#c-paused")
    await expect(notice).to_contain_text("Paused: ")
    await expect(notice).to_contain_text("held until you resume")

    # Within a moment every claimed message is held too: the page says so, nothing in flight.
    async def settled() -> bool:
        outbox = (await api.get(f"/api/v1/campaigns/{c['id']}")).json()["outbox"]
        return bool(outbox["in_flight"] == 0)

    await eventually(settled, timeout=10)
    await page.reload()
    await expect(page.locator("#c-outbox")).to_have_text(re.compile(r"^\d+ held until you resume$"))
    now = (await api.get(f"/api/v1/campaigns/{c['id']}")).json()
    assert now["outbox"]["held"] == now["counts"]["queued"] > 0, now
    await page.click("#c-resume")
    await expect(page.locator("#c-state")).to_have_text("completed", timeout=60_000)
    assert not seen.page_errors and not seen.console_errors and not seen.csp_violations


@pytest.mark.parametrize(
    ("width", "height", "scheme"),
    [(1280, 800, "light"), (768, 1024, "light"), (390, 844, "dark")],
    ids=["desktop", "tablet", "phone"],
)
async def test_campaign_to_a_label_audience_first_with_honest_progress(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    browser: Browser,
    width: int,
    height: int,
    scheme: str,
) -> None:
    """The editor's three steps, by keyboard and pointer, at desktop and phone width: a label
    as the audience (counted, with each channel's reach), one message with a text per channel
    only for the channels that audience uses, a preview of what each recipient gets, a launch
    that states count and cost, and live progress that ends with every message delivered."""
    site = await api_channel(api, server, "acme")
    sms_id = (await twilio_channel(api, server, name="SMS line"))["id"]
    assert (
        await api.post("/api/v1/admin/labels", json={"name": "vip", "color": "#b91c1c"})
    ).status_code == 201
    for i in range(4):
        await customer_says(server, "acme", f"vip-{i}", "hi", name=f"Vip {i}" if i < 3 else "Other")
    convs = await wait_conversations(api, 4)
    names = {
        c["id"]: (await api.get(f"/api/v1/contacts/{c['contact_id']}")).json()["name"]
        for c in convs
    }
    vips = sorted((c for c in convs if names[c["id"]] != "Other"), key=lambda c: names[c["id"]])
    assert [names[c["id"]] for c in vips] == ["Vip 0", "Vip 1", "Vip 2"]
    for c in vips:
        r = await api.patch(f"/api/v1/conversations/{c['id']}", json={"labels": ["vip"]})
        assert r.status_code == 200, r.text
    # One VIP also has a phone number: the SMS line reaches one of the three.
    r = await api.patch(f"/api/v1/contacts/{vips[0]['contact_id']}", json={"phone": "+14155550161"})
    assert r.status_code == 200, r.text

    ctx = await browser.new_context(
        viewport={"width": width, "height": height}, color_scheme=scheme
    )
    page, seen = await new_page(ctx)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/campaigns#new")
    await page.wait_for_selector("body[data-ready='1']")
    await expect(page.locator("#campaign-form")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= width

    # Step 1 by keyboard where it matters: name typed, channels and the label ticked.
    await page.focus("#c-name")
    await page.keyboard.type("VIP early access")
    await page.locator(f"#c-channels input[value='{site['id']}']").focus()
    await page.keyboard.press("Space")
    await page.locator(f"#c-channels input[value='{sms_id}']").check()
    await page.locator("#c-labels input[value='vip']").focus()
    await page.keyboard.press("Space")
    await expect(page.locator("#c-labels input[value='vip']")).to_be_checked()
    await page.click("#c-count")
    await expect(page.locator("#c-reach-count")).to_have_text("3")
    await expect(page.locator(f"#c-reach [data-channel='{site['id']}'] b")).to_have_text("3")
    await expect(page.locator(f"#c-reach [data-channel='{sms_id}'] b")).to_have_text("1")
    await expect(page.locator("#c-labels input[value='vip']")).to_be_checked()  # kept on save
    if width < 500:
        await screenshot(page, "campaign-editor-phone")
    await page.click("#c-next")

    # Step 2: both channels are used by this audience, so SMS may have its own text (the
    # website channel takes the message itself: campaigns send no per-kind text there).
    await expect(page.locator("#c-steps li.current")).to_have_attribute("data-step", "message")
    await expect(page.locator("#c-variants")).to_be_visible()
    await expect(page.locator("#c-text-api")).to_have_count(0)
    await expect(page.locator("#c-text-twilio")).to_be_visible()
    await expect(page.locator("#c-template")).to_have_count(0)  # no template channel chosen
    await page.fill("#c-text", "Hi {{first_name}}, early access starts now")
    await page.fill("#c-text-twilio", "Hi {{first_name}}, early access: reply STOP to opt out")
    await expect(page.locator("#sms-meter-twilio")).to_contain_text("1 segment")
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    await page.click("#c-next")

    # Step 3: what each recipient gets, rendered with their name, on the website channel
    # (first in order and reachable for all three).
    await expect(page.locator("#c-steps li.current")).to_have_attribute("data-step", "preview")
    cards = page.locator("#preview-list li")
    await expect(cards).to_have_count(3)
    for i in range(3):
        card = cards.filter(has_text=f"Vip {i}")
        await expect(card).to_contain_text("Hi Vip, early access starts now")
        await expect(card.locator(".pc-channel")).to_have_text(site["name"])
    await expect(page.locator("#preview-list")).not_to_contain_text("Other")
    await expect(page.locator(f"#p-via-{site['id']} .v")).to_have_text("3")
    if width < 500:
        await screenshot(page, "campaign-editor-preview-phone")
    assert await page.evaluate("document.documentElement.scrollWidth") <= width

    # Launch: the confirmation states the count and the cost; then honest live progress.
    await expect(page.locator("body[data-live='1']")).to_have_count(1)
    await page.click("#c-launch")
    confirm = page.locator("dialog.confirm")
    await expect(confirm).to_contain_text("to 3 recipients now")
    await expect(confirm).to_contain_text(f"3 via {site['name']}")
    await expect(confirm).to_contain_text("Estimated cost: —")
    await page.click("#confirm-ok")
    await expect(page.locator("#c-state")).to_have_text("completed", timeout=60_000)
    await expect(page.locator("#c-progress")).to_contain_text("100% · 3 / 3")
    line = page.locator("#c-counts")
    await expect(line.locator("[data-state=queued] b")).to_have_text("0")
    await expect(line.locator("[data-state=failed] b")).to_have_text("0")
    await expect(page.locator("#c-fallbacks b")).to_have_text("0")
    gone = [
        int(await line.locator(f"[data-state={s}] b").inner_text())
        for s in ("sent", "delivered", "read")
    ]
    assert sum(gone) == 3, gone
    if width < 500:
        await page.locator("h1").scroll_into_view_if_needed()
        await screenshot(page, "campaign-progress-phone")

    async with httpx.AsyncClient(
        base_url=f"{server.url}/sandbox/api", headers=sandbox_headers(server)
    ) as sim:
        got = (await sim.get("/_sim/received", params={"account": "acme"})).json()
    assert sorted(m["text"] for m in got) == ["Hi Vip, early access starts now"] * 3
    assert not seen.page_errors and not seen.console_errors and not seen.csp_violations
    await ctx.close()


async def test_whatsapp_campaign_preview_shows_text_in_the_window_and_the_template_otherwise(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    """On WhatsApp free text reaches only customers inside the service window: the preview says
    who is skipped and why; with an approved template every recipient gets it, rendered with
    their own name as they will read it."""
    wa = await whatsapp_channel(api, server)
    await add_template(
        server, owner, wa["id"], "Hello {{1}}, our spring sale starts now", name="spring_sale"
    )
    await whatsapp_says(server, "4915110000001", "Ana Open", "hi", hours_ago=1)
    await whatsapp_says(server, "4915110000002", "Ben Closed", "hi", hours_ago=30)
    convs = await wait_conversations(api, 2)
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/campaigns#new")
    await page.wait_for_selector("body[data-ready='1']")
    await page.fill("#c-name", "Spring on WhatsApp")
    await page.locator(f"#c-channels input[value='{wa['id']}']").check()
    await page.fill("#c-contacts", ", ".join(str(c["contact_id"]) for c in convs))
    await page.click("#c-next")
    await expect(page.locator(f"#c-reach [data-channel='{wa['id']}'] b")).to_have_text("2")
    await expect(page.locator("#c-variants")).to_have_count(0)  # one channel: one message
    await expect(page.locator("#c-template")).to_be_visible()
    await expect(page.locator("#sms-meter")).to_have_count(0)  # no SMS channel chosen
    await page.fill("#c-text", "Hi {{first_name}}, spring sale!")
    await page.click("#c-next")

    cards = page.locator("#preview-list li")
    ana, ben = cards.filter(has_text="Ana Open"), cards.filter(has_text="Ben Closed")
    await expect(ana.locator(".pc-how")).to_have_text("Text")
    await expect(ana.locator(".pc-bubble")).to_have_text("Hi Ana, spring sale!")
    await expect(ben).to_contain_text("Not sent")
    await expect(page.locator("#p-skipped .v")).to_have_text("1")

    await page.click("#c-back")
    await page.fill("#c-tpl-name", "spring_sale")
    await page.fill("#c-tpl-lang", "en")
    await page.fill("#c-tpl-params", "{{first_name}}")
    await page.click("#c-next")
    await expect(page.locator("#p-skipped .v")).to_have_text("0")
    for who, first in ((ana, "Ana"), (ben, "Ben")):
        await expect(who.locator(".pc-how")).to_have_text("Template")
        await expect(who.locator(".pc-bubble")).to_have_text(
            f"Hello {first}, our spring sale starts now"
        )
    await screenshot(page, "campaign-editor-template")
    assert not seen.page_errors and not seen.console_errors and not seen.csp_violations
