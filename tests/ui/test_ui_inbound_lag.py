"""The inbox says when incoming messages are delayed (issue 14, item 5): a banner once the
customer lane's lag passes a few seconds, gone when the backlog drains; receipts lagging behind
a broadcast never raise it, and agents are not shown the status lane at all."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from tests.conftest import Owner, Server, free_port, make_settings, serving
from tests.core.test_inbound_lag import age, backlog
from tests.ui.helpers import PASSWORD, new_page, screenshot, sign_in
from tidings.actions.admin import bootstrap
from tidings.ingest.worker import process_batch


@pytest.fixture
async def idle_server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    """Webhooks are acknowledged and stored, and no worker processes them."""
    settings = make_settings(database_url, tmp_path / "data", free_port(), run_workers=False)
    async with serving(settings) as srv:
        yield srv


async def test_banner_shows_while_customer_messages_wait(
    idle_server: Server, context: BrowserContext
) -> None:
    server = idle_server
    made = await bootstrap(server.runtime, "owner@example.com", PASSWORD, "Lag")
    owner = Owner(made["workspace_id"], made["agent_id"], made["inbox_id"], made["api_token"])
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {owner.token}"}, timeout=20
    ) as api:
        bo = await api.post(
            "/api/v1/admin/agents",
            json={"email": "bo@example.com", "name": "Bo", "role": "agent", "password": PASSWORD},
        )
        assert bo.status_code == 201, bo.text
        await backlog(server, api)
    # Receipts far behind (a broadcast's), customers' messages fresh: no banner.
    await age(server, "status", 60)

    page, seen = await new_page(context)
    async with page.expect_response("**/api/v1/inbound/lag") as first:
        await sign_in(page, server, "bo@example.com")
    lag = await (await first.value).json()
    assert lag["status"] is None  # an agent is not shown the status lane
    assert lag["customer"]["pending"] == 3
    banner = page.locator("#lag-banner")
    await expect(banner).to_be_hidden()

    # The customers' messages fall 12 s behind: the banner says so, within a poll.
    await age(server, "customer", 12)
    await expect(banner).to_be_visible()
    await expect(banner).to_have_text(
        re.compile(r"^Incoming messages delayed by (1[2-9]|[2-5]\d) s$")
    )
    await screenshot(page, "inbound-lag-banner")

    # The worker catches up: the banner goes.
    while await process_batch(server.runtime):
        pass
    await expect(banner).to_be_hidden()
    assert seen.page_errors == [] and seen.csp_violations == [], seen
    assert seen.console_errors == [], seen.console_errors
