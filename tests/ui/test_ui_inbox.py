"""The agent inbox in a real browser: sign-in, live updates without reload, reply with ticks,
notes with @mentions, keyboard triage, search, and the composer's channel picker."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Browser, BrowserContext, expect

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.ui.helpers import (
    add_template,
    api_channel,
    customer_says,
    inbox_agent,
    new_page,
    sign_in,
    wait_conversations,
    whatsapp_channel,
    whatsapp_says,
)
from tidings.storage.models import Contact, ContactIdentity


async def test_sign_in_live_conversation_reply_and_ticks(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await api_channel(api, server, "live")
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await expect(page.locator("#list .empty")).to_have_text("No conversations here.")
    await expect(page.locator("#live.on")).to_have_count(1)

    # A webhook from the simulator: the conversation appears without a reload.
    await customer_says(server, "live", "cust-1", "Hello, is my order shipped?", name="Ana Lima")
    row = page.locator("#list .conv")
    await expect(row).to_have_count(1)
    await expect(row.locator(".name")).to_have_text("Ana Lima")
    await expect(row.locator(".preview")).to_have_text("Hello, is my order shipped?")
    await expect(row.locator(".badge")).to_have_text("1")
    # The channel shows as its kind's icon (from /channel-kinds), named for screen readers.
    await expect(row.locator(".ch")).to_have_attribute("data-kind", "api")
    await expect(row.locator(".ch")).to_have_attribute("aria-label", "Website live")
    await expect(row.locator(".ch svg use")).to_have_attribute("href", "/static/icons.svg#code-xml")
    await expect(page).to_have_title("(1) Inbox — Tidings")

    # A second message updates the same row live.
    await customer_says(server, "live", "cust-1", "Order 4711")
    await expect(row.locator(".preview")).to_have_text("Order 4711")
    await expect(row.locator(".badge")).to_have_text("2")

    await row.click()
    await expect(page.locator("#t-name")).to_have_text("Ana Lima")
    await expect(page.locator("#messages .msg.in")).to_have_count(2)
    # Opening marks it read: the unread marker and the tab count go.
    await expect(row.locator(".badge")).to_have_count(0)
    await expect(page).to_have_title("Inbox — Tidings")
    await expect(page.locator("#contact-pane .idents")).to_contain_text("cust-1")

    await page.fill("#c-text", "Yes, it left today.")
    await page.click("#c-send")
    out = page.locator("#messages .msg.out")
    await expect(out).to_have_count(1)
    await expect(out.locator(".body")).to_have_text("Yes, it left today.")
    # The simulator reports delivered then read: the tick moves to read, live.
    await expect(out.locator(".tick")).to_have_attribute("data-status", "read", timeout=10_000)
    await expect(page.locator("#c-text")).to_have_value("")

    # A new customer message while the thread is open shows up in it.
    await customer_says(server, "live", "cust-1", "Thanks!")
    await expect(page.locator("#messages .msg.in")).to_have_count(3)
    assert seen.page_errors == [] and seen.console_errors == [] and seen.csp_violations == []


async def test_note_with_mention_and_keyboard_triage(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await api_channel(api, server, "kbd")
    bo_id = await inbox_agent(api, owner)
    await customer_says(server, "kbd", "cust-9", "My parcel is late", name="Carl")
    await customer_says(server, "kbd", "cust-8", "Second customer", name="Dina")
    convs = await wait_conversations(api, 2)
    carl = next(c for c in convs if c["last_message_preview"] == "My parcel is late")

    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await expect(page.locator("#list .conv")).to_have_count(2)
    # j moves the selection, Enter opens; the newest (Dina) is first, Carl second.
    await page.keyboard.press("j")
    await page.keyboard.press("j")
    await page.keyboard.press("Enter")
    await expect(page.locator("#t-name")).to_have_text("Carl")

    # n: note mode; a note with an @mention, shown as a private note, never sent.
    await page.keyboard.press("n")
    await expect(page.locator("#composer.note-mode")).to_have_count(1)
    await page.keyboard.type("@bo can you check the courier?")
    await page.keyboard.press("Control+Enter")
    note = page.locator("#messages .msg.note")
    await expect(note).to_have_count(1)
    await expect(note.locator(".mention")).to_have_text("@bo")
    await expect(note.locator(".note-tag")).to_have_text("Private note")
    msgs = (await api.get(f"/api/v1/conversations/{carl['id']}/messages")).json()["data"]
    notes = [m for m in msgs if m["kind"] == "note"]
    assert len(notes) == 1 and notes[0]["extra"]["mentions"] == [bo_id]
    sim = (
        await httpx.AsyncClient(headers=sandbox_headers(server)).get(
            f"{server.url}/sandbox/api/_sim/received", params={"account": "kbd"}
        )
    ).json()
    assert sim == []  # nothing reached the customer's side

    # Escape leaves the composer; a: assign to Bo; l: add a label; e: resolve.
    await page.keyboard.press("Escape")
    await page.keyboard.press("a")
    await page.keyboard.type("Bo")
    await page.keyboard.press("Enter")
    await expect(page.locator("#t-assignee")).to_have_value(str(bo_id))
    await page.keyboard.press("l")
    await page.keyboard.type("shipping")
    await page.keyboard.press("Enter")
    await expect(page.locator("#t-labels .label")).to_have_text(["shipping"])
    await page.keyboard.press("e")
    await expect(page.locator("#t-status")).to_have_value("resolved")
    # The open filter drops it from the list; the thread narrates each change.
    await expect(page.locator("#list .conv")).to_have_count(1)
    await expect(page.locator("#messages .sys")).to_have_count(3)
    await expect(page.locator("#messages .sys").nth(0)).to_contain_text("assigned Bo Berg")

    got = (await api.get(f"/api/v1/conversations/{carl['id']}")).json()
    assert (got["status"], got["assignee_id"], got["labels"]) == (
        "resolved",
        bo_id,
        ["shipping"],
    )

    # ?: the shortcut help.
    await page.keyboard.press("?")
    await expect(page.locator("#help")).to_be_visible()
    await page.keyboard.press("Escape")

    # /: search finds the resolved conversation by message text.
    await page.keyboard.press("/")
    await page.keyboard.type("parcel")
    await expect(page.locator("#search-results .hit .snippet")).to_have_text(["My parcel is late"])
    assert seen.page_errors == [] and seen.console_errors == []


async def test_window_countdown_and_channel_picker(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await api_channel(api, server, "web")
    wa = await whatsapp_channel(api, server)
    # One customer wrote 30 hours ago (window closed), one 2 hours ago (22 h left).
    await whatsapp_says(server, "4915100000001", "Old Customer", "hello from yesterday", 30)
    await whatsapp_says(server, "4915100000002", "New Customer", "hello from today", 2)
    convs = await wait_conversations(api, 2)
    old = next(c for c in convs if c["last_message_preview"] == "hello from yesterday")

    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    rows = page.locator("#list .conv")
    await expect(rows).to_have_count(2)
    await expect(rows.filter(has_text="New Customer").locator(".window")).to_have_text(
        "closes in 21 h"
    )
    await expect(rows.filter(has_text="Old Customer").locator(".window")).to_have_text(
        "closed — template only"
    )

    await page.goto(f"{server.url}/inbox#c/{old['id']}")
    await expect(page.locator("#t-name")).to_have_text("Old Customer")
    options = page.locator("#c-channel option")
    await expect(options).to_have_count(2)
    # WhatsApp: window closed; the API channel: no identity for this customer. Nothing can go.
    await expect(options.nth(0)).to_have_text("Website web — can't: customer not known here")
    await expect(options.nth(1)).to_have_text("WhatsApp — can't: window closed — template only")
    # One banner instead of a line per blocked channel: the window is closed, a template can go.
    await expect(page.locator("#c-why .closed")).to_contain_text("Window closed — send a template")
    await expect(page.locator("#c-template")).to_be_visible()
    await expect(page.locator("#c-why .blocked")).to_have_count(0)
    # Nothing can be sent as free text: Send and Attach are hidden, not merely greyed.
    await expect(page.locator("#c-send")).to_be_hidden()
    await expect(page.locator("#c-attach")).to_be_hidden()
    # A note still works when no channel can reach the customer.
    await page.click("#mode-note")
    await expect(page.locator("#c-send")).to_be_enabled()
    await expect(page.locator("#c-banner")).to_be_hidden()
    # A location from the fresh customer renders as a place with numeric coordinates.
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/whatsapp", timeout=20
    ) as sim:
        resp = await sim.post(
            "/_sim/inbound",
            json={
                "phone_number_id": "100000000000077",
                "from": "4915100000002",
                "name": "New Customer",
                "type": "location",
                "location": {"latitude": 52.52, "longitude": 13.405, "name": "Alexanderplatz"},
            },
        )
    assert resp.status_code == 200, resp.text
    await page.click("#list .conv:has-text('New Customer')")
    place = page.locator("#messages .msg.in .body").last
    await expect(place).to_contain_text("📍 Alexanderplatz")
    await expect(place.locator("a")).to_have_text("52.52000, 13.40500")
    assert wa["kind"] == "whatsapp" and seen.page_errors == []


async def test_canned_reply_by_shortcut(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await api_channel(api, server, "canned")
    resp = await api.post(
        "/api/v1/admin/canned_replies",
        json={"short_code": "thanks", "content": "Thank you for waiting!"},
    )
    assert resp.status_code == 201, resp.text
    other = await api.post(
        "/api/v1/admin/canned_replies",
        json={"short_code": "thanks-later", "content": "Thanks, we will write back."},
    )
    assert other.status_code == 201, other.text
    await customer_says(server, "canned", "cust-5", "hi there", name="Eve")
    convs = await wait_conversations(api, 1)
    page, _seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/inbox#c/{convs[0]['id']}")
    await expect(page.locator("#t-name")).to_have_text("Eve")
    await page.click("#c-text")
    await page.keyboard.type("/tha")
    await expect(page.locator("#canned li")).to_have_count(2)
    # Arrow keys move through the suggestions (and wrap); Enter takes the highlighted one.
    await page.keyboard.press("ArrowDown")
    await expect(page.locator("#canned li.active")).to_contain_text("/thanks-later")
    await page.keyboard.press("ArrowDown")
    await expect(page.locator("#canned li.active")).to_contain_text("Thank you for waiting!")
    await page.keyboard.press("Enter")
    await expect(page.locator("#c-text")).to_have_value("Thank you for waiting!")
    await page.keyboard.press("Control+Enter")
    await expect(page.locator("#messages .msg.out .body")).to_have_text(["Thank you for waiting!"])
    # Snooze from the status menu: a picker of times; the conversation leaves the open list.
    await page.select_option("#t-status", "snoozed")
    await page.keyboard.type("4 hours")
    await page.keyboard.press("Enter")
    await expect(page.locator("#t-status")).to_have_value("snoozed")
    await expect(page.locator("#list .conv")).to_have_count(0)
    got = (await api.get(f"/api/v1/conversations/{convs[0]['id']}")).json()
    assert got["status"] == "snoozed" and got["snoozed_until"] is not None


async def test_presence_and_the_warning_before_a_double_reply(
    server: Server, owner: Owner, api: httpx.AsyncClient, browser: Browser
) -> None:
    await api_channel(api, server, "duo")
    await inbox_agent(api, owner)
    await customer_says(server, "duo", "c-7", "Where is my refund?", name="Gus")
    conv = (await wait_conversations(api, 1))[0]
    url = f"{server.url}/inbox#c/{conv['id']}"

    mine = await browser.new_context(viewport={"width": 1280, "height": 800})
    theirs = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        me, _ = await new_page(mine)
        await sign_in(me, server, "owner@example.com")
        await me.goto(url)
        await expect(me.locator("#t-name")).to_have_text("Gus")
        bo_page, _ = await new_page(theirs)
        await sign_in(bo_page, server, "bo@example.com", "bo-password-1")
        await bo_page.goto(url)
        await expect(bo_page.locator("#t-name")).to_have_text("Gus")
        # Each sees the other.
        await expect(me.locator("#presence")).to_have_text("Bo Berg is viewing")
        await expect(bo_page.locator("#presence")).to_have_text("owner is viewing")

        # I start a reply; Bo starts typing (replying) and sends first.
        await me.fill("#c-text", "Your refund went out today.")
        await bo_page.click("#c-text")
        await bo_page.keyboard.type("Refund is on its way!")
        await expect(me.locator("#presence")).to_have_text("Bo Berg is replying")
        await bo_page.keyboard.press("Control+Enter")
        await expect(me.locator("#messages .msg.out")).to_have_count(1)

        # My Send is held back once with a warning; the second press sends.
        await me.click("#c-send")
        await expect(me.locator("#c-warning")).to_contain_text(
            "Bo Berg replied while you were writing"
        )
        msgs = (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["data"]
        assert [m["body"] for m in msgs if m["direction"] == "out"] == ["Refund is on its way!"]
        await me.click("#c-send")
        await expect(me.locator("#messages .msg.out")).to_have_count(2)
        await expect(me.locator("#c-warning")).to_be_hidden()
        msgs = (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["data"]
        assert [m["body"] for m in msgs if m["direction"] == "out"] == [
            "Refund is on its way!",
            "Your refund went out today.",
        ]
        # Bo leaves: the presence line goes away.
        await bo_page.goto(f"{server.url}/inbox")
        await expect(me.locator("#presence")).to_be_hidden()
    finally:
        await mine.close()
        await theirs.close()


async def test_contact_merge_and_undo(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await api_channel(api, server, "merge")
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/api"
    ) as sim:
        await sim.post(
            "/_sim/inbound",
            json={
                "account": "merge",
                "from": "web-1",
                "name": "Hana",
                "phone": "+49 151 12345600",
                "text": "hi",
            },
        )
    conv = (await wait_conversations(api, 1))[0]
    # A duplicate with the same E.164 number, as an import or an older channel would leave it.
    async with server.runtime.db.write() as s:
        dup = Contact(
            workspace_id=owner.workspace_id,
            name="Hana K.",
            phone_e164="+4915112345600",
            attributes={},
        )
        s.add(dup)
        await s.flush()
        s.add(
            ContactIdentity(
                workspace_id=owner.workspace_id,
                contact_id=dup.id,
                channel_kind="sms",
                address="+4915112345600",
            )
        )
        dup_id = dup.id

    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/inbox#c/{conv['id']}")
    dups = page.locator("#contact-pane .dups li")
    await expect(dups).to_have_count(1)
    await expect(dups).to_contain_text("Hana K.")
    await expect(dups).to_contain_text("same phone number")
    await dups.locator("button.merge").click()
    await expect(page.locator("#contact-pane .idents li")).to_have_count(2)
    await expect(page.locator("#contact-pane .dups li")).to_have_count(0)
    contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
    assert sorted(i["address"] for i in contact["identities"]) == ["+4915112345600", "web-1"]

    await page.click("#undo-merge")
    await expect(page.locator("#contact-pane .idents li")).to_have_count(1)
    await expect(page.locator("#contact-pane .dups li")).to_have_count(1)
    contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
    assert [i["address"] for i in contact["identities"]] == ["web-1"]
    restored = (await api.get(f"/api/v1/contacts/{dup_id}")).json()
    assert [i["address"] for i in restored["identities"]] == ["+4915112345600"]
    assert "merged_into" not in restored["attributes"]
    assert seen.page_errors == []


async def test_failed_reply_shows_the_reason_and_retry_sends_it(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    channel = await api_channel(api, server, "flaky")
    await customer_says(server, "flaky", "c-3", "are you there?", name="Ivo")
    conv = (await wait_conversations(api, 1))[0]
    receive = f"{server.url}/webhooks/api/{channel['id']}"
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/api"
    ) as sim:
        # The integrator rotates its secret without telling us: it refuses our signature (401).
        await sim.put(
            "/_sim/accounts/flaky",
            json={"secret": "a-different-secret-0000", "tidings_webhook_url": receive},
        )
        page, seen = await new_page(context)
        await sign_in(page, server, "owner@example.com")
        await page.goto(f"{server.url}/inbox#c/{conv['id']}")
        await page.fill("#c-text", "Yes, how can I help?")
        await page.click("#c-send")
        failed = page.locator("#messages .msg.out.failed")
        await expect(failed).to_have_count(1)
        await expect(failed.locator(".reason")).to_have_text(
            "The receiving system refused the message (401)."
        )
        await expect(failed.locator(".tick")).to_have_attribute("data-status", "failed")
        # Fixed on their side; Retry sends the same message again and it reaches read.
        await sim.put(
            "/_sim/accounts/flaky",
            json={"secret": "s3cret-for-the-api-channel", "tidings_webhook_url": receive},
        )
        await failed.locator("button.retry").click()
        out = page.locator("#messages .msg.out")
        await expect(out.locator(".tick")).to_have_attribute("data-status", "read", timeout=10_000)
        await expect(page.locator("#messages .msg.out.failed")).to_have_count(0)
        received = (await sim.get("/_sim/received", params={"account": "flaky"})).json()
    assert [m["text"] for m in received] == ["Yes, how can I help?"]
    msgs = (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["data"]
    assert [(m["body"], m["status"]) for m in msgs if m["direction"] == "out"] == [
        ("Yes, how can I help?", "read")
    ]
    assert seen.page_errors == []


async def test_bulk_actions_reach_beyond_the_loaded_page(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await api_channel(api, server, "bulk")
    for i in range(32):  # more than one page of 30
        await customer_says(server, "bulk", f"c-{i}", f"question {i}", name=f"Customer {i}")
    await wait_conversations(api, 25)

    async def all_there() -> bool:
        page = (await api.get("/api/v1/ui/conversations?limit=100")).json()["data"]
        return len(page) == 32

    await eventually(all_there)
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await expect(page.locator("#list .conv")).to_have_count(30)
    # x picks the selected row; then "select all matching" takes all 32, not just the 30 shown.
    await page.keyboard.press("j")
    await page.keyboard.press("x")
    await expect(page.locator("#bulk .count")).to_have_text("1 selected")
    await page.click("#pick-all")
    await expect(page.locator("#bulk .count")).to_have_text("All matching")
    await page.click("#bulk-label")
    await page.keyboard.type("backlog")
    await page.keyboard.press("Enter")
    await expect(page.locator("#bulk-done")).to_have_text("Updated 32 conversations.")
    labelled = (await api.get("/api/v1/conversations?label=backlog&limit=100")).json()["data"]
    assert len(labelled) == 32
    # Two picked by hand, resolved together: the open list loses exactly those two.
    await page.locator("#list .conv .pick").nth(0).check()
    await page.locator("#list .conv .pick").nth(1).check()
    await page.click("#bulk-resolve")
    await expect(page.locator("#bulk-done")).to_have_text("Updated 2 conversations.")
    resolved = (await api.get("/api/v1/conversations?status=resolved&limit=100")).json()["data"]
    assert len(resolved) == 2
    assert seen.page_errors == []


async def test_sms_counter_in_the_composer(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    config = {
        "account_sid": "AC" + "1" * 32,
        "auth_token": "a" * 32,
        "from_number": "+14155550100",
        "api_base_url": f"{server.url}/sandbox/twilio",
    }
    made = await api.post(
        "/api/v1/channels", json={"kind": "twilio", "name": "SMS", "config": config}
    )
    assert made.status_code == 201, made.text
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/twilio", timeout=20
    ) as sim:
        resp = await sim.post(
            "/_sim/inbound", json={"from": "+14155550123", "text": "hi", "to": "+14155550100"}
        )
    assert resp.status_code == 200, resp.text
    conv = (await wait_conversations(api, 1))[0]
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/inbox#c/{conv['id']}")
    await expect(page.locator("#c-channel option")).to_have_text(["SMS"])
    counter = page.locator("#c-counter")
    await page.fill("#c-text", "Hello there")
    await expect(counter).to_contain_text("11 chars · 1 segment")
    await expect(counter).not_to_contain_text("UCS-2 because")
    # One character outside GSM-7 switches the whole message to UCS-2, and says which.
    await page.fill("#c-text", "Your parcel ✓ arrives today")
    await expect(counter).to_contain_text("UCS-2 because of ✓")
    # Ten characters before the first segment is full, the counter warns; past it, it says so.
    await page.fill("#c-text", "a" * 152)
    await expect(counter).to_contain_text("8 left before segment 2")
    await expect(counter).to_have_class(re.compile(r"\bnear\b"))
    await page.fill("#c-text", "a" * 161)
    await expect(counter).to_contain_text("161 chars · 2 segments")
    await expect(counter).to_have_class(re.compile(r"\bover\b"))
    assert seen.page_errors == []


async def test_closed_window_forces_the_template_picker(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    wa = await whatsapp_channel(api, server)
    for name, status in (("order_update", "APPROVED"), ("promo_rejected", "REJECTED")):
        await add_template(
            server, owner, wa["id"], "Hi {{1}}, order {{2}} has shipped.", name, status
        )
    await whatsapp_says(server, "4915100000003", "Late Customer", "any news?", 30)
    conv = (await wait_conversations(api, 1))[0]
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/inbox#c/{conv['id']}")
    await expect(page.locator("#c-send")).to_be_hidden()
    await expect(page.locator("#c-banner")).to_contain_text("Window closed — send a template")
    await page.click("#c-template")
    # Only the approved template is offered; its two parameters get fields and a preview.
    await expect(page.locator("#tpl-select option")).to_have_text(["order_update (en, utility)"])
    params = page.locator("#tpl-params input")
    await expect(params).to_have_count(2)
    await params.nth(0).fill("Lena")
    await params.nth(1).fill("#4711")
    await expect(page.locator("#tpl-preview")).to_have_text("Hi Lena, order #4711 has shipped.")
    await page.click("#tpl-send")
    out = page.locator("#messages .msg.out")
    await expect(out.locator(".body")).to_have_text(["Hi Lena, order #4711 has shipped."])
    await expect(out.locator(".tick")).to_have_attribute(
        "data-status", re.compile("sent|delivered|read")
    )
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/whatsapp"
    ) as sim:
        thread = (
            await sim.get(
                "/_sim/conversations",
                params={"phone_number_id": "100000000000077", "user": "4915100000003"},
            )
        ).json()
    assert any("order_update" in str(m) for m in thread), thread
    msgs = (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["data"]
    sent = [m for m in msgs if m["direction"] == "out"]
    assert [(m["kind"], m["extra"]["template"]["name"]) for m in sent] == [
        ("template", "order_update")
    ]
    # Free text is still refused by the API while the window is closed.
    refused = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "hello?"}
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "window_closed"
    assert seen.page_errors == []
