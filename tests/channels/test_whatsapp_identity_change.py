"""WhatsApp system messages that move a customer to a new id (issue 16 #1), over real HTTP.

`user_changed_user_id` (Meta, Aug 2026) has no `from` and no contacts[]: the user is only in
`system.previous_user_id` → `system.user_id`. It used to fail as "names no sender" and nothing
appeared. Now the notice is a system line in that customer's thread, the identity moves to the
new id (no second contact), and later messages from the new id land in the same conversation.
Fixtures: tests/fixtures/whatsapp/system_user_changed_*.json (shapes in docs/channels/whatsapp.md).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

from tests import factories
from tests.conftest import Owner, Server, eventually
from tests.core.test_whatsapp_e2e import APP_SECRET, PNID, whatsapp_channel
from tidings.domain.enums import InboundState
from tidings.storage.models import Contact, InboundEvent

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "whatsapp"
NUMBER, NEW_NUMBER = "16505551234", "12195555358"
OLD_BSUID, NEW_BSUID = "US.13491208655302741918", "US.20873365410287759341"


def envelope(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }


def text_from(
    wamid: str, at: int, text: str, number: str | None, bsuid: str | None
) -> dict[str, Any]:
    """A text message as Cloud API sends it: number and/or BSUID (username users: BSUID only)."""
    message: dict[str, Any] = {"id": wamid, "timestamp": str(at), "type": "text"}
    message["text"] = {"body": text}
    contact: dict[str, Any] = {"profile": {"name": "Sheena Nelson"}}
    if number:
        message["from"] = contact["wa_id"] = number
    if bsuid:
        message["from_user_id"] = contact["user_id"] = bsuid
    return envelope(
        {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
            "contacts": [contact],
            "messages": [message],
        }
    )


async def post(channel: dict[str, Any], payload: dict[str, Any] | bytes) -> None:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    sig = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    async with httpx.AsyncClient() as client:
        resp = await client.post(
            channel["webhook_url"],
            content=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={sig}"},
        )
    assert resp.status_code == 200, resp.text


async def settled(server: Server, n: int) -> list[str] | None:
    """The states of all stored events, once `n` are stored and none is pending."""
    async with server.runtime.db.read() as s:
        states = list((await s.scalars(select(InboundEvent.state))).all())
    done = len(states) == n and InboundState.PENDING not in states
    return [str(x) for x in states] if done else None


async def contacts(server: Server) -> int:
    async with server.runtime.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(Contact)) or 0)


async def only_conversation(api: httpx.AsyncClient) -> dict[str, Any]:
    convs = (await api.get("/api/v1/conversations")).json()["data"]
    assert len(convs) == 1, convs
    return dict(convs[0])


async def thread(api: httpx.AsyncClient, conv_id: int) -> list[tuple[str, str, str]]:
    data = (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]
    return [(m["direction"], m["kind"], m["body"]) for m in data]


async def test_user_changed_user_id_moves_the_identity(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await whatsapp_channel(server, api)
    await post(channel, text_from("wamid.A1", 1786400000, "hello", NUMBER, OLD_BSUID))
    await eventually(lambda: settled(server, 1))
    assert (await only_conversation(api))["unread_count"] == 1

    # The real shape: no from, no contacts[]; only system.previous_user_id names the customer.
    await post(channel, (FIXTURES / "system_user_changed_user_id.json").read_bytes())
    assert await eventually(lambda: settled(server, 2)) == ["done", "done"]
    conv = await only_conversation(api)
    notice = "User Sheena Nelson changed from US.13491208655302741918 to US.20873365410287759341"
    assert await thread(api, conv["id"]) == [("in", "text", "hello"), ("in", "system", notice)]
    assert conv["unread_count"] == 1  # the notice is not something the customer wrote
    contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
    # The number did not change, so it stays the address replies go to.
    assert [(i["channel_kind"], i["address"]) for i in contact["identities"]] == [
        ("whatsapp", NUMBER)
    ]

    # A username user writing under the new BSUID only (no number): same contact, same thread.
    await post(channel, text_from("wamid.A3", 1786500000, "still me", None, NEW_BSUID))
    assert await eventually(lambda: settled(server, 3)) == ["done"] * 3
    conv = await only_conversation(api)
    assert [b for _d, _k, b in await thread(api, conv["id"])] == ["hello", notice, "still me"]
    assert await contacts(server) == 1


async def test_user_changed_number_moves_to_the_new_number(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await whatsapp_channel(server, api)
    await post(channel, text_from("wamid.B1", 1786400000, "hello", NUMBER, OLD_BSUID))
    await eventually(lambda: settled(server, 1))

    await post(channel, (FIXTURES / "system_user_changed_number.json").read_bytes())
    assert await eventually(lambda: settled(server, 2)) == ["done", "done"]
    conv = await only_conversation(api)
    contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
    assert [(i["channel_kind"], i["address"]) for i in contact["identities"]] == [
        ("whatsapp", NEW_NUMBER)
    ]
    assert contact["phone"] == f"+{NEW_NUMBER}"

    await post(channel, text_from("wamid.B3", 1786500000, "new phone", NEW_NUMBER, NEW_BSUID))
    assert await eventually(lambda: settled(server, 3)) == ["done"] * 3
    conv = await only_conversation(api)
    assert [k for _d, k, _b in await thread(api, conv["id"])] == ["text", "system", "text"]
    assert await contacts(server) == 1

    # The old number now belongs to someone else (numbers are recycled): a new contact.
    await post(channel, text_from("wamid.B4", 1786600000, "who is this?", NUMBER, None))
    await eventually(lambda: settled(server, 4))
    assert await contacts(server) == 2


async def test_a_notice_about_no_known_customer_changes_nothing(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await whatsapp_channel(server, api)
    await post(channel, (FIXTURES / "system_user_changed_user_id.json").read_bytes())
    assert await eventually(lambda: settled(server, 1)) == ["done"]
    assert (await api.get("/api/v1/conversations")).json()["data"] == []
    assert await contacts(server) == 0


async def test_the_sandbox_customer_changes_user_id_and_number(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """The simulator plays both notices as Meta sends them; the customer keeps one thread."""
    await whatsapp_channel(server, api)
    async with factories.simulator(server, "whatsapp") as sim:
        first = {"phone_number_id": PNID, "from": NUMBER, "user_id": OLD_BSUID, "name": "Sheena"}
        assert (await sim.post("/_sim/inbound", json={**first, "text": "hi"})).json()[
            "status"
        ] == 200
        await eventually(lambda: settled(server, 1))
        moved = await sim.post("/_sim/change_user", json={"phone_number_id": PNID, "user": NUMBER})
        assert moved.status_code == 200, moved.text
        await eventually(lambda: settled(server, 2))
        renumbered = await sim.post(
            "/_sim/change_user",
            json={"phone_number_id": PNID, "user": NUMBER, "new_wa_id": NEW_NUMBER},
        )
        assert renumbered.status_code == 200, renumbered.text
        await eventually(lambda: settled(server, 3))
        later = {"phone_number_id": PNID, "from": NEW_NUMBER, "text": "from my new phone"}
        assert (await sim.post("/_sim/inbound", json=later)).json()["status"] == 200
    assert await eventually(lambda: settled(server, 4)) == ["done"] * 4
    conv = await only_conversation(api)
    assert [k for _d, k, _b in await thread(api, conv["id"])] == [
        "text",
        "system",
        "system",
        "text",
    ]
    contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
    assert contact["phone"] == f"+{NEW_NUMBER}"
    assert await contacts(server) == 1


async def test_typing_after_a_notice_rides_on_the_customers_last_message(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """WhatsApp's typing indicator rides on marking the customer's latest message read, and
    a notice (a system message) is no message of theirs to mark: Meta and the simulator
    refuse its id. After an id change the agent's typing showed the customer nothing."""
    await whatsapp_channel(server, api)
    async with factories.simulator(server, "whatsapp") as sim:
        first = {"phone_number_id": PNID, "from": NUMBER, "user_id": OLD_BSUID, "name": "Sheena"}
        assert (await sim.post("/_sim/inbound", json={**first, "text": "hi"})).json()[
            "status"
        ] == 200
        await eventually(lambda: settled(server, 1))
        moved = await sim.post("/_sim/change_user", json={"phone_number_id": PNID, "user": NUMBER})
        assert moved.status_code == 200, moved.text
        await eventually(lambda: settled(server, 2))
        conv = await only_conversation(api)
        presence = await api.post(
            f"/api/v1/ui/conversations/{conv['id']}/presence",
            json={"state": "replying", "typing": True},
        )
        assert presence.status_code == 200, presence.text

        async def typing() -> bool:
            rows = (await sim.get("/_sim/customers", params={"phone_number_id": PNID})).json()
            return any(r.get("typing") for r in rows)

        assert await eventually(typing, timeout=5)


async def test_mark_read_after_a_notice_marks_the_customers_last_message(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """`POST …/signals` mark_read marks the customer's latest message; a notice is none (the
    provider refused its id, so the API answered an error)."""
    await whatsapp_channel(server, api)
    async with factories.simulator(server, "whatsapp") as sim:
        first = {"phone_number_id": PNID, "from": NUMBER, "user_id": OLD_BSUID, "name": "Sheena"}
        assert (await sim.post("/_sim/inbound", json={**first, "text": "hi"})).json()[
            "status"
        ] == 200
        await eventually(lambda: settled(server, 1))
        moved = await sim.post("/_sim/change_user", json={"phone_number_id": PNID, "user": NUMBER})
        assert moved.status_code == 200, moved.text
        await eventually(lambda: settled(server, 2))
    conv = await only_conversation(api)
    signal = await api.post(
        f"/api/v1/conversations/{conv['id']}/signals", json={"action": "mark_read"}
    )
    assert signal.status_code == 200, signal.text
