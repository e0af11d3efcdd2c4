"""The same tests over every channel adapter, each driven through its sandbox simulator over
real HTTP (see drivers.py): inbound text becomes a conversation; a duplicate changes nothing;
a bad signature stores nothing; a reply reaches the simulator and its statuses come back; an
unknown type becomes a visible "unsupported" message."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import Owner, Server, eventually
from tests.contract.drivers import DRIVERS, Driver, NamedCustomer, TimestampUnits
from tidings.storage.models import InboundEvent, Message

pytestmark = pytest.mark.parametrize("driver", DRIVERS, ids=[d.kind for d in DRIVERS])


@pytest.fixture(autouse=True)
def how_this_channel_plays_the_case(
    request: pytest.FixtureRequest, record_property: Any, driver: Driver
) -> None:
    """A case a channel plays in its own way says so in the report, with the reason."""
    name = request.node.originalname
    if name in driver.adapted:
        record_property("adapted", f"{driver.kind}: {driver.adapted[name]}")


async def connect(api: httpx.AsyncClient, server: Server, driver: Driver) -> dict[str, Any]:
    resp = await api.post(
        "/api/v1/channels",
        json={
            "kind": driver.kind,
            "name": f"{driver.kind} (contract)",
            "config": driver.config(server),
        },
    )
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def count(server: Server, model: type) -> int:
    async with server.runtime.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def the_conversation(api: httpx.AsyncClient) -> dict[str, Any]:
    async def convs() -> list[Any]:
        return (await api.get("/api/v1/conversations")).json()["data"]

    found = await eventually(convs)
    assert len(found) == 1, found
    conv: dict[str, Any] = found[0]
    return conv


async def messages(api: httpx.AsyncClient, conv_id: int, at_least: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        data = (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]
        return data if len(data) >= at_least else None

    result: list[dict[str, Any]] = await eventually(check)
    return result


async def test_inbound_text_becomes_a_conversation(
    server: Server, owner: Owner, api: httpx.AsyncClient, driver: Driver
) -> None:
    await connect(api, server, driver)
    provider_id = await driver.customer_text(server, "Hello from the contract suite")
    conv = await the_conversation(api)
    [message] = await messages(api, conv["id"], 1)
    assert message["direction"] == "in"
    assert message["kind"] == "text"
    assert message["body"] == "Hello from the contract suite"
    assert message["provider_message_id"] == provider_id
    assert conv["unread_count"] == 1


async def test_duplicate_changes_nothing(
    server: Server, owner: Owner, api: httpx.AsyncClient, driver: Driver
) -> None:
    await connect(api, server, driver)
    provider_id = await driver.customer_text(server, "once")
    conv = await the_conversation(api)
    await messages(api, conv["id"], 1)
    again = await driver.customer_text(server, "once", message_id=provider_id)
    assert again == provider_id
    await driver.customer_text(server, "a later, different message")
    await messages(api, conv["id"], 2)
    assert await count(server, Message) == 2
    assert await count(server, InboundEvent) == 2


async def test_bad_signature_stores_nothing(
    server: Server, owner: Owner, api: httpx.AsyncClient, driver: Driver
) -> None:
    channel = await connect(api, server, driver)
    body, headers = driver.forged_request()
    async with httpx.AsyncClient() as client:
        resp = await client.post(
            channel["webhook_url"],
            params=driver.forged_query(),
            content=body,
            headers={"Content-Type": "application/json", **headers},
        )
    assert resp.status_code in (401, 403), resp.text
    assert await count(server, InboundEvent) == 0
    assert await count(server, Message) == 0


async def test_reply_reaches_the_simulator_and_statuses_come_back(
    server: Server, owner: Owner, api: httpx.AsyncClient, driver: Driver
) -> None:
    await connect(api, server, driver)
    await driver.customer_text(server, "Can I get help?")
    conv = await the_conversation(api)
    await messages(api, conv["id"], 1)
    reply = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Of course."}
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["status"] == "queued"

    async def received() -> list[str]:
        return await driver.received(server)

    assert await eventually(received) == ["Of course."]

    async def final() -> dict[str, Any] | None:
        data = await messages(api, conv["id"], 2)
        ours = next(m for m in data if m["id"] == reply.json()["id"])
        return ours if ours["status"] == driver.final_status else None

    ours = await eventually(final)
    assert ours["provider_message_id"]
    # Receipts and echoes never add messages.
    assert len(await messages(api, conv["id"], 2)) == 2


async def test_unknown_type_is_a_visible_unsupported_message(
    server: Server, owner: Owner, api: httpx.AsyncClient, driver: Driver
) -> None:
    await connect(api, server, driver)
    await driver.customer_unknown(server)
    conv = await the_conversation(api)
    [message] = await messages(api, conv["id"], 1)
    assert message["kind"] == "unsupported"
    assert message["direction"] == "in"
    assert conv["last_message_preview"] == "[unsupported message]"


async def test_profile_names_reach_the_contact(
    server: Server, owner: Owner, api: httpx.AsyncClient, driver: Driver
) -> None:
    """A customer the provider knows by name (in the payload, or from its profile API in the
    background) ends up with that name on the contact and in the conversation list."""
    if not isinstance(driver, NamedCustomer):
        pytest.skip(f"{driver.kind}: no profile source and no name in the simulated payload")
    await connect(api, server, driver)
    await driver.customer_named(server, "Mei Lindqvist", "Hello, it's me")
    conv = await the_conversation(api)

    async def named() -> dict[str, Any] | None:
        contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
        return contact if contact["name"] == "Mei Lindqvist" else None

    contact = await eventually(named)
    assert contact["display_name"] == "Mei Lindqvist"
    [listed] = (await api.get("/api/v1/ui/conversations")).json()["data"]
    assert listed["contact_display_name"] == "Mei Lindqvist"


async def test_timestamps_in_either_unit(
    server: Server, owner: Owner, api: httpx.AsyncClient, driver: Driver
) -> None:
    """Where a provider writes times in more than one unit, every form dates the message now,
    so the service window is open and an immediate reply is accepted."""
    if not isinstance(driver, TimestampUnits):
        pytest.skip(f"{driver.kind}: the provider's payload times have one unit")
    await connect(api, server, driver)
    for n, unit in enumerate(driver.units, start=1):
        before = time.time()
        await driver.customer_text_timed(server, f"written with {unit}", unit)
        conv = await the_conversation(api)
        # Found by text: a time in seconds loses its milliseconds and may sort earlier.
        [newest] = [
            m for m in await messages(api, conv["id"], n) if m["body"] == f"written with {unit}"
        ]
        sent_at = datetime.fromisoformat(newest["sent_at"]).timestamp()
        # Seconds lose the milliseconds: up to a second early.
        assert before - 1.5 <= sent_at <= time.time() + 1, (unit, newest["sent_at"])
    reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hi!"})
    assert reply.status_code == 201, reply.text


def test_adapted_cases_name_real_cases(driver: Driver) -> None:
    cases = {name for name in globals() if name.startswith("test_")}
    assert set(driver.adapted) <= cases, set(driver.adapted) - cases
