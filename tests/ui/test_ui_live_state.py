"""Live state in the thread: messages in the order they happened, and delivery ticks that never
move backwards (issue #16, items 8 and 9)."""

from __future__ import annotations

import asyncio
import math
import re
from datetime import datetime

import httpx
from playwright.async_api import BrowserContext, Route, expect

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.ui.helpers import new_page, sign_in, wait_conversations, whatsapp_channel, whatsapp_says


async def _messages(api: httpx.AsyncClient, conv_id: int) -> list[dict[str, object]]:
    data: list[dict[str, object]] = (
        await api.get(f"/api/v1/conversations/{conv_id}/messages")
    ).json()["data"]
    return data


async def test_same_second_messages_show_in_the_order_they_happened(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    """A message stamped on a whole second (providers give seconds) and one written by Tidings
    later in that second (an auto-reply, here a note: both carry microseconds) show in instant
    order, live and after a reload. Compared as text, "…:05.4+00:00" sorted before "…:05+00:00".
    The whole-second message is made deterministic by giving the simulator the note's second."""
    await whatsapp_channel(api, server)
    await whatsapp_says(server, "4915100000008", "Ana", "first question", hours_ago=0.1)
    [conv] = await wait_conversations(api, 1)
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/inbox#c/{conv['id']}")
    await expect(page.locator("#messages li")).to_have_count(1)

    note = await api.post(
        f"/api/v1/ui/conversations/{conv['id']}/notes", json={"text": "written later"}
    )
    assert note.status_code == 201, note.text
    noted = datetime.fromisoformat(note.json()["sent_at"])
    assert noted.microsecond, "a note on a whole second cannot show the difference"
    async with httpx.AsyncClient(
        base_url=f"{server.url}/sandbox/whatsapp", headers=sandbox_headers(server), timeout=20
    ) as sim:
        resp = await sim.post(
            "/_sim/inbound",
            json={
                "phone_number_id": "100000000000077",
                "from": "4915100000008",
                "name": "Ana",
                "text": "same second, earlier",
                "timestamp": math.floor(noted.timestamp()),
            },
        )
    assert resp.status_code == 200, resp.text
    await eventually(lambda: _count(api, conv["id"], 3))

    # The API gives one format (microseconds always) and the instant order.
    msgs = await _messages(api, conv["id"])
    assert [m["body"] for m in msgs] == ["first question", "same second, earlier", "written later"]
    assert all(str(m["sent_at"]).endswith(".000000+00:00") for m in msgs[:2]), msgs

    expected = ["first question", "same second, earlier", "written later"]
    bodies = page.locator("#messages li .body")
    await expect(bodies).to_have_text(expected)  # live
    await page.reload()
    await page.wait_for_selector("body[data-ready='1']")
    await expect(bodies).to_have_text(expected)  # from the list
    assert seen.page_errors == [] and seen.console_errors == []


async def _count(api: httpx.AsyncClient, conv_id: int, n: int) -> bool:
    return len(await _messages(api, conv_id)) >= n


async def test_a_late_post_answer_does_not_put_the_tick_back_to_queued(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    """The reply's POST answer ("queued") reaches the page after the live "sent" event (the
    provider answered first, as Telegram's and WeChat's do). The race is made deterministic
    with Playwright route interception: the browser-side answer of POST …/messages is held
    until the page shows the live status, then released unchanged."""
    await whatsapp_channel(api, server)
    await whatsapp_says(server, "4915100000009", "Bo", "where is my parcel?", hours_ago=0.1)
    [conv] = await wait_conversations(api, 1)
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.goto(f"{server.url}/inbox#c/{conv['id']}")
    await expect(page.locator("#messages .msg.in")).to_have_count(1)

    live_status_shown = asyncio.Event()
    answered: list[dict[str, object]] = []

    async def hold_answer(route: Route) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        response = await route.fetch()
        answered.append(await response.json())
        await live_status_shown.wait()
        await route.fulfill(response=response)

    await page.route(f"**/api/v1/conversations/{conv['id']}/messages", hold_answer)
    # Every status the reply's tick shows, in order (the thread is re-rendered on each change).
    await page.evaluate(
        """() => {
          window.__ticks = [];
          new MutationObserver(() => {
            const t = document.querySelector("#messages .msg.out .tick");
            const last = window.__ticks[window.__ticks.length - 1];
            if (t && t.dataset.status !== last) window.__ticks.push(t.dataset.status);
          }).observe(document.getElementById("messages"), { childList: true, subtree: true });
        }"""
    )
    await page.fill("#c-text", "It left today.")
    await page.click("#c-send")
    tick = page.locator("#messages .msg.out .tick")
    # Live events alone bring the reply and its progress past "queued".
    await expect(tick).to_have_attribute("data-status", _past_queued())
    assert answered and answered[0]["status"] == "queued"
    live_status_shown.set()
    # The held answer has now been applied (the composer empties after it)...
    await expect(page.locator("#c-text")).to_have_value("")
    # ...and the tick never went back (a later receipt would hide it, so the whole history).
    await expect(tick).to_have_attribute("data-status", "read")
    shown: list[str] = await page.evaluate("window.__ticks")
    rank = ["queued", "sent", "delivered", "read"]
    assert shown[0] == "queued" and shown[-1] == "read", shown
    assert [rank.index(s) for s in shown] == sorted(rank.index(s) for s in shown), shown
    assert seen.page_errors == [] and seen.console_errors == []


def _past_queued() -> re.Pattern[str]:
    return re.compile(r"^(sent|delivered|read)$")


TG_TOKEN = "7000000003:AAH-composer_typing_token"


async def test_typing_in_the_composer_shows_typing_to_the_customer(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    """Keystrokes in the composer make Telegram show "typing…" (`sendChatAction`, recorded by
    the simulator): at once, not again within 5 s however fast the agent types, and again
    after 5 s while the agent keeps typing (Telegram's indicator lapses after about 5 s)."""
    resp = await api.post(
        "/api/v1/channels",
        json={
            "kind": "telegram",
            "name": "Bot",
            "config": {
                "bot_token": TG_TOKEN,
                "secret_token": "composer_typing_secret",
                "api_base_url": f"{server.url}/sandbox/telegram",
            },
        },
    )
    assert resp.status_code == 201, resp.text
    async with httpx.AsyncClient(
        base_url=f"{server.url}/sandbox/telegram", headers=sandbox_headers(server), timeout=20
    ) as sim:
        said = await sim.post(
            "/_sim/inbound", json={"token": TG_TOKEN, "chat_id": 737373, "text": "hello?"}
        )
        assert said.status_code == 200, said.text
        [conv] = await wait_conversations(api, 1)

        async def typing_calls() -> list[dict[str, object]]:
            calls = (await sim.get("/_sim/sent", params={"token": TG_TOKEN})).json()
            return [c for c in calls if c["method"] == "sendChatAction"]

        page, seen = await new_page(context)
        await sign_in(page, server, "owner@example.com")
        await page.goto(f"{server.url}/inbox#c/{conv['id']}")
        await expect(page.locator("#messages .msg.in")).to_have_count(1)
        # Opening and reading the conversation shows nothing to the customer.
        await asyncio.sleep(0.5)
        assert await typing_calls() == []

        await page.click("#c-text")
        started = asyncio.get_running_loop().time()
        await page.keyboard.type("Let me check ")
        [first] = await eventually(typing_calls)
        assert first["params"] == {"chat_id": 737373, "action": "typing"}
        await page.keyboard.type("your order, one moment please")
        await asyncio.sleep(1)
        if asyncio.get_running_loop().time() - started < 4.5:  # a loaded machine may be slower
            assert len(await typing_calls()) == 1  # throttled
        await asyncio.sleep(max(0.0, started + 5.5 - asyncio.get_running_loop().time()))
        await page.keyboard.type(" ...")
        await eventually(lambda: _at_least(typing_calls, 2), timeout=3)
        assert seen.page_errors == [] and seen.console_errors == []


async def _at_least(calls: object, n: int) -> bool:
    assert callable(calls)
    return len(await calls()) >= n
