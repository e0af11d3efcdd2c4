"""Browser helpers: Playwright (from PyPI) driving Debian's chromium, headless.

Never `playwright install`: the browser is the system's /usr/bin/chromium (scripts/services
installs it when missing). Every page records console errors, page errors and dialogs, so a
test can assert that nothing ran that should not have.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests import factories
from tests.conftest import Owner, Server, eventually
from tidings.storage.models import Template

CHROMIUM = os.environ.get("TIDINGS_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (scripts/services install)")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        await b.close()


@dataclass
class Watched:
    """What a page did that a test may want to forbid."""

    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)


def watch(page: Page, seen: Watched) -> None:
    async def on_dialog(dialog: Any) -> None:
        seen.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            text = msg.text
            (
                seen.csp_violations if "Content Security Policy" in text else seen.console_errors
            ).append(text)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda err: seen.page_errors.append(str(err)))


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    yield ctx
    await ctx.close()


async def new_page(ctx: BrowserContext) -> tuple[Page, Watched]:
    page = await ctx.new_page()
    seen = Watched()
    watch(page, seen)
    return page, seen


SCREENS = os.environ.get("TIDINGS_SCREENSHOTS")


async def screenshot(page: Page, name: str) -> None:
    """README screenshots: written to docs/screens only when TIDINGS_SCREENSHOTS=1, so a
    normal test run leaves the work tree clean (the page is still rendered and captured)."""
    data = await page.screenshot(path=f"docs/screens/{name}.png" if SCREENS else None)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


async def sign_in(page: Page, server: Server, email: str, password: str = PASSWORD) -> None:
    await page.goto(f"{server.url}/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{server.url}/inbox")
    await page.wait_for_selector("body[data-ready='1']")


async def api_channel(
    api: httpx.AsyncClient, server: Server, account: str, **extra: Any
) -> dict[str, Any]:
    return await factories.api_channel(
        api, secret="s3cret-for-the-api-channel", server=server, account=account, **extra
    )


async def customer_says(
    server: Server, account: str, user: str, text: str, name: str | None = None
) -> None:
    async with factories.simulator(server, "api") as sim:
        body: dict[str, Any] = {"account": account, "from": user, "text": text}
        if name is not None:
            body["name"] = name
        resp = await sim.post("/_sim/inbound", json=body)
    assert resp.json()["status"] == 200, resp.text


async def wait_conversations(api: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        data: list[dict[str, Any]] = (await api.get("/api/v1/conversations")).json()["data"]
        return data if len(data) >= count else None

    result: list[dict[str, Any]] = await eventually(check)
    return result


async def whatsapp_channel(api: httpx.AsyncClient, server: Server) -> dict[str, Any]:
    return await factories.whatsapp_channel(
        api,
        server,
        phone_number_id="100000000000077",
        display_phone_number="15550007777",
        access_token="wa-access-token-for-tests",
        verify_token="wa-verify-token",
    )


async def whatsapp_says(server: Server, wa_id: str, name: str, text: str, hours_ago: float) -> None:
    async with factories.simulator(server, "whatsapp") as sim:
        resp = await sim.post(
            "/_sim/inbound",
            json={
                "phone_number_id": "100000000000077",
                "from": wa_id,
                "name": name,
                "text": text,
                "timestamp": int(time.time() - hours_ago * 3600),
            },
        )
    assert resp.status_code == 200, resp.text


__all__ = [
    "Owner",
    "Watched",
    "api_channel",
    "customer_says",
    "new_page",
    "sign_in",
    "wait_conversations",
    "whatsapp_channel",
    "whatsapp_says",
]


async def inbox_agent(
    api: httpx.AsyncClient,
    owner: Owner,
    email: str = "bo@example.com",
    name: str = "Bo Berg",
    password: str = "bo-password-1",  # noqa: S107 - a test agent's password
) -> int:
    """An agent (role agent) made by the owner and put in the owner's inbox beside them."""
    made = await api.post(
        "/api/v1/admin/agents",
        json={"email": email, "name": name, "role": "agent", "password": password},
    )
    assert made.status_code == 201, made.text
    agent_id: int = made.json()["id"]
    member = await api.put(
        f"/api/v1/admin/inboxes/{owner.inbox_id}/members",
        json={"agent_ids": [owner.agent_id, agent_id]},
    )
    assert member.status_code == 200, member.text
    return agent_id


async def add_template(
    server: Server,
    owner: Owner,
    channel_id: int,
    body: str,
    name: str = "order_update",
    status: str = "APPROVED",
) -> None:
    """A WhatsApp message template as a sync would have stored it (UTILITY, English)."""
    async with server.runtime.db.write() as s:
        s.add(
            Template(
                workspace_id=owner.workspace_id,
                channel_id=channel_id,
                name=name,
                language="en",
                category="UTILITY",
                status=status,
                components=[{"type": "BODY", "text": body}],
            )
        )
