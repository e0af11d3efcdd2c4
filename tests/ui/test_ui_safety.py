"""Customer text is untrusted: an XSS corpus sent as message text AND as customer names, over
two channels of the sandbox, renders as text in every pane and runs nothing. And an agent
cannot open a conversation of an inbox they do not belong to."""

from __future__ import annotations

import httpx
from playwright.async_api import BrowserContext, expect

from tests.conftest import Owner, Server, eventually, sandbox_headers, sandbox_phone_url
from tests.ui.helpers import (
    api_channel,
    customer_says,
    new_page,
    sign_in,
    wait_conversations,
    whatsapp_channel,
    whatsapp_says,
)

CORPUS = [
    "<script>alert('xss-1')</script>",
    "<img src=x onerror=\"alert('xss-2')\">",
    "<a href=\"javascript:alert('xss-3')\">click me</a>",
    "<svg onload=alert('xss-4')><script>alert('xss-5')</script></svg>",
    "\"><svg/onload=confirm('xss-6')>",
    "javascript:alert('xss-7')",
    "<iframe srcdoc=\"<script>parent.alert('xss-8')</script>\"></iframe>",
    "<style>*{display:none}</style><b onmouseover=alert('xss-9')>hover</b>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert('xss-10')>",
]
EVIL_NAME = "<img src=x onerror=alert('name')>Mallory"


async def test_xss_corpus_renders_as_text_and_runs_nothing(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await api_channel(api, server, "xss")
    await whatsapp_channel(api, server)
    for i, payload in enumerate(CORPUS):
        # Each payload is also a customer name, on the API channel.
        await customer_says(server, "xss", f"user-{i}", payload, name=payload)
    for payload in CORPUS[:3]:
        await whatsapp_says(server, "4915100000099", EVIL_NAME, payload, 0)
    # A document whose file name and caption are payloads too.
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/whatsapp", timeout=20
    ) as sim:
        doc = await sim.post(
            "/_sim/inbound",
            json={
                "phone_number_id": "100000000000077",
                "from": "4915100000099",
                "name": EVIL_NAME,
                "type": "document",
                "document": {"filename": CORPUS[3] + ".pdf", "caption": CORPUS[4]},
            },
        )
    assert doc.status_code == 200, doc.text
    convs = await wait_conversations(api, len(CORPUS) + 1)

    async def mallory_complete() -> bool:
        rows = (await api.get("/api/v1/ui/conversations?limit=100")).json()["data"]
        mine = [c for c in rows if c["contact_name"] == EVIL_NAME]
        if not mine:
            return False
        msgs = (await api.get(f"/api/v1/conversations/{mine[0]['id']}/messages")).json()["data"]
        return len(msgs) == 4

    await eventually(mallory_complete)

    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    names = page.locator("#list .conv .name")
    await expect(names).to_have_count(len(CORPUS) + 1)
    shown = set(await names.all_text_contents())
    assert shown == {*CORPUS, EVIL_NAME}

    # Every thread shows its payload as the exact text, in the header and the bubble.
    await expect(page.locator("#list .conv:has-text('Mallory') .preview")).not_to_have_text(
        CORPUS[1]
    )
    convs = (await api.get("/api/v1/conversations?limit=100")).json()["data"]
    by_id = {c["id"]: c for c in convs}
    for conv in by_id.values():
        await page.evaluate("id => { location.hash = 'c/' + id; }", conv["id"])
        await expect(page.locator("#t-meta")).to_contain_text(f"#{conv['id']}")
        await expect(page.locator("#messages .msg.in .body").last).to_have_text(
            conv["last_message_preview"]
        )
    # Mallory's thread: three payloads as text, her name as text in the header and panel.
    await page.click("#list .conv:has-text('Mallory')")
    await expect(page.locator("#t-name")).to_have_text(EVIL_NAME)
    await expect(page.locator("#messages .msg.in")).to_have_count(4)
    await expect(page.locator("#messages .msg.in .body").nth(0)).to_have_text(CORPUS[0])
    await expect(page.locator("#messages .msg.in .att")).to_contain_text(CORPUS[3] + ".pdf")
    await expect(page.locator("#messages .msg.in .att")).to_contain_text(CORPUS[4])
    await expect(page.locator("#contact-pane .contact-name")).to_have_text(EVIL_NAME)
    # A note quoting a payload, with a mention, is text too.
    await page.keyboard.press("n")
    await page.keyboard.type("@owner look: " + CORPUS[1])
    await page.keyboard.press("Control+Enter")
    await expect(page.locator("#messages .msg.note .body")).to_have_text(
        "@owner look: " + CORPUS[1]
    )

    # Search shows names and text as text.
    await page.fill("#search", "xss-")
    await expect(page.locator("#search-results .hit .snippet").first).to_be_visible()

    # Nothing the payloads carry became an element anywhere in the page.
    # Our own icons are SVGs of exactly one <use> of the served sprite; nothing else may be.
    for pane in ("#list", "#messages", "#contact-pane", "#search-results"):
        count = await page.evaluate(
            """pane => [...document.querySelectorAll(`${pane} :is(script, img, svg, iframe,
                style, math, a[href^='javascript'])`)].filter((e) => !(e.tagName === "svg"
                && e.getAttribute("class")?.startsWith("icon ") && e.children.length === 1
                && e.firstElementChild.tagName === "use"
                && /^\\/static\\/icons\\.svg#[a-z0-9-]+$/.test(
                    e.firstElementChild.getAttribute("href")))).length""",
            pane,
        )
        assert count == 0, pane
    # Only the page's own scripts (ui.js, inbox.js and its helpers), none from a payload.
    assert await page.locator("script:not([src^='/static/'])").count() == 0
    assert await page.locator("script[src='/static/inbox.js']").count() == 1
    assert await page.locator("#list .conv .name b, #messages b").count() == 0

    # The customer phone shows the same thread as text as well.
    phone, phone_seen = await new_page(context)
    await phone.goto(sandbox_phone_url(server))
    await phone.select_option("#channel", label="Website xss (api)")
    await phone.fill("#user", "user-0")
    await phone.dispatch_event("#user", "change")
    await expect(phone.locator("#thread .msg.in")).to_have_count(1)
    assert (await phone.locator("#thread .msg.in").text_content() or "").startswith(CORPUS[0])
    assert await phone.locator("#thread script, #thread img").count() == 0

    await page.wait_for_timeout(300)  # let any deferred handler (onerror, onload) fire
    for s in (seen, phone_seen):
        assert s.dialogs == [], s.dialogs
        assert s.page_errors == [], s.page_errors
        assert s.console_errors == [], s.console_errors
        # Had any payload become markup, CSP would have blocked (and reported) its handler.
        assert s.csp_violations == [], s.csp_violations


async def test_agent_cannot_open_a_conversation_of_another_inbox(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    billing = (
        await api.post("/api/v1/admin/inboxes", json={"name": "Billing", "agent_ids": []})
    ).json()
    await api_channel(api, server, "mine")
    await api_channel(api, server, "billing", inbox_id=billing["id"])
    await customer_says(server, "mine", "c1", "visible question", name="Visible")
    await customer_says(server, "billing", "c2", "secret invoice question", name="Hidden")
    convs = await wait_conversations(api, 2)
    hidden = next(c for c in convs if c["inbox_id"] == billing["id"])
    agent = await api.post(
        "/api/v1/admin/agents",
        json={
            "email": "ana@example.com",
            "name": "Ana",
            "role": "agent",
            "password": "agent-password-1",
        },
    )
    assert agent.status_code == 201
    await api.put(
        f"/api/v1/admin/inboxes/{owner.inbox_id}/members", json={"agent_ids": [agent.json()["id"]]}
    )

    page, seen = await new_page(context)
    await sign_in(page, server, "ana@example.com", "agent-password-1")
    await expect(page.locator("#list .conv .name")).to_have_text(["Visible"])
    await page.goto(f"{server.url}/inbox#c/{hidden['id']}")
    await page.wait_for_selector("body[data-ready='1']")
    await expect(page.locator("#thread-empty")).to_contain_text("Conversation not found")
    await expect(page.locator("#thread")).to_be_hidden()
    assert "secret invoice" not in (await page.content())
    # Live events of the other inbox never reach this agent's page either.
    await customer_says(server, "billing", "c2", "another secret", name="Hidden")
    await customer_says(server, "mine", "c1", "visible again", name="Visible")
    await expect(page.locator("#list .conv .preview")).to_have_text(["visible again"])
    assert "another secret" not in (await page.content())
    # Settings are for admins only; the nav does not offer them.
    await expect(page.locator(".top nav a", has_text="Settings")).to_have_count(0)
    resp = await page.goto(f"{server.url}/settings")
    assert resp is not None and resp.status == 403
    assert seen.page_errors == []
