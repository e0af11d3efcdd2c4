"""Messenger end to end over real HTTP with the sandbox simulator: handshake, signatures, every
inbound kind of docs/channels/messenger.md#inbound-events, replies in the Send API shape, echoes,
watermarks, the 24-hour window with HUMAN_AGENT, and Graph errors in plain words."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

from tests import factories
from tests.conftest import Owner, Server, eventually
from tests.factories import messenger_channel
from tidings.storage.models import InboundEvent, Message

PAGE_ID = "104857600000001"
APP_SECRET = "messenger-app-secret-for-tests"
TOKEN = "EAAB-page-token"
PSID = "6543210987654321"
CHANNEL = {"page_id": PAGE_ID, "page_access_token": TOKEN, "app_secret": APP_SECRET}


def simulator(server: Server) -> httpx.AsyncClient:
    return factories.simulator(server, "messenger")


async def count(server: Server, model: type) -> int:
    async with server.runtime.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def only_conversation(api: httpx.AsyncClient) -> dict[str, Any]:
    async def convs() -> list[Any]:
        return (await api.get("/api/v1/conversations")).json()["data"]

    found = await eventually(convs)
    assert len(found) == 1
    return found[0]  # type: ignore[no-any-return]


async def thread(api: httpx.AsyncClient, conv_id: int) -> list[dict[str, Any]]:
    return (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]  # type: ignore[no-any-return]


async def wait_messages(api: httpx.AsyncClient, conv_id: int, n: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        msgs = await thread(api, conv_id)
        return msgs if len(msgs) >= n else None

    return await eventually(check)  # type: ignore[no-any-return]


async def inbound(sim: httpx.AsyncClient, **spec: Any) -> dict[str, Any]:
    spec.setdefault("account_id", PAGE_ID)
    spec.setdefault("from", PSID)
    resp = await sim.post("/_sim/inbound", json=spec)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    assert data["status"] == 200, data
    return data


async def test_handshake_signature_duplicate_and_reply_with_receipts(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await messenger_channel(api, server, **CHANNEL)
    webhook = channel["webhook_url"]
    async with httpx.AsyncClient() as client:
        ok = await client.get(
            webhook,
            params={
                "hub.mode": "subscribe",
                "hub.challenge": "987654",
                "hub.verify_token": "verify-me",
            },
        )
        bad = await client.get(
            webhook,
            params={"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "wrong"},
        )
        forged = await client.post(
            webhook,
            content=orjson.dumps({"object": "page", "entry": []}),
            headers={"X-Hub-Signature-256": "sha256=" + "a" * 64},
        )
    assert (ok.status_code, ok.text) == (200, "987654")
    assert bad.status_code == 403
    assert forged.status_code == 401
    assert await count(server, InboundEvent) == 0

    sim = simulator(server)
    first = await inbound(sim, text="Is the shop open on Sunday?", name="Ana")
    conv = await only_conversation(api)
    [msg] = await wait_messages(api, conv["id"], 1)
    assert (msg["direction"], msg["body"], msg["provider_message_id"]) == (
        "in",
        "Is the shop open on Sunday?",
        first["id"],
    )
    contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
    assert [(i["channel_kind"], i["address"]) for i in contact["identities"]] == [
        ("messenger", PSID)
    ]

    # Meta retries the same mid: stored once.
    await inbound(sim, text="Is the shop open on Sunday?", id=first["id"])
    await sim.post("/_sim/flush", json={"timeout": 5})
    assert await count(server, InboundEvent) == 1
    assert len(await thread(api, conv["id"])) == 1

    reply = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Yes, 10-16."}
    )
    assert reply.status_code == 201, reply.text
    reply_id = reply.json()["id"]

    async def sent() -> list[Any]:
        return (await sim.get("/_sim/sent", params={"account_id": PAGE_ID})).json()

    [request] = await eventually(sent)
    assert request["path"] == f"/sandbox/messenger/v25.0/{PAGE_ID}/messages"
    assert request["body"] == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "Yes, 10-16.", "metadata": f"tidings:{reply_id}"},
    }
    mid = request["response"]["body"]["message_id"]

    async def read() -> dict[str, Any] | None:
        m = next(m for m in await thread(api, conv["id"]) if m["id"] == reply_id)
        return m if m["status"] == "read" else None

    final = await eventually(read)
    assert final["provider_message_id"] == mid
    await sim.post("/_sim/flush", json={"timeout": 5})
    # The echo of our own reply confirmed it; it never became a second message.
    msgs = await thread(api, conv["id"])
    assert [(m["direction"], m["body"]) for m in msgs] == [
        ("in", "Is the shop open on Sunday?"),
        ("out", "Yes, 10-16."),
    ]
    await sim.aclose()


async def test_every_inbound_kind(server: Server, owner: Owner, api: httpx.AsyncClient) -> None:
    await messenger_channel(api, server, **CHANNEL)
    sim = simulator(server)
    text = await inbound(sim, text="hello")
    conv = await only_conversation(api)
    await wait_messages(api, conv["id"], 1)
    await inbound(sim, type="attachments", attachments=[{"type": "image"}, {"type": "file"}])
    await inbound(sim, type="quick_reply", text="Red", payload="PICK_RED")
    await inbound(sim, type="postback", title="Talk to agent", payload="AGENT")
    await inbound(
        sim,
        type="referral",
        referral={"ref": "summer", "source": "ADS", "ad_id": "42", "type": "OPEN_THREAD"},
    )
    await inbound(sim, type="text", text="about that", reply_to=text["id"])
    await inbound(sim, type="reaction", mid=text["id"], reaction="love")
    await inbound(sim, type="unreact", mid=text["id"])
    await inbound(sim, type="unsupported")
    await inbound(sim, type="page_reply", text="Written in the Page inbox")
    msgs = await wait_messages(api, conv["id"], 10)
    assert len(msgs) == 10
    by_kind = [(m["direction"], m["kind"], m["body"]) for m in msgs]
    assert by_kind == [
        ("in", "text", "hello"),
        ("in", "media", None),
        ("in", "text", "Red"),
        ("in", "interactive", "Talk to agent"),
        ("in", "system", "Opened the conversation from an ad (ref summer)"),
        ("in", "text", "about that"),
        ("in", "reaction", "\u2764\ufe0f"),
        ("in", "reaction", ""),
        ("in", "unsupported", None),
        ("out", "text", "Written in the Page inbox"),
    ]
    media = msgs[1]
    assert [a["kind"] for a in media["attachments"]] == ["image", "file"]
    assert msgs[2]["extra"]["quick_reply_payload"] == "PICK_RED"
    assert msgs[3]["extra"] == {"type": "postback", "payload": "AGENT"}
    assert msgs[4]["extra"]["referral"]["ad_id"] == "42"
    assert msgs[5]["reply_to_id"] == msgs[0]["id"]
    assert msgs[6]["reply_to_id"] == msgs[0]["id"]
    assert msgs[9]["extra"]["app_id"] == "263902037430900"

    # The customer edits their first message: the new text shows, the old one is kept.
    await inbound(sim, type="edit", mid=text["id"], text="hello again")

    async def edited() -> dict[str, Any] | None:
        first = (await thread(api, conv["id"]))[0]
        return first if first["body"] == "hello again" else None

    first = await eventually(edited)
    assert first["extra"]["edits"][0]["previous"] == "hello"
    assert len(await thread(api, conv["id"])) == 10
    await sim.aclose()


async def test_window_and_human_agent_tag(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await messenger_channel(api, server, **CHANNEL, human_agent=True)
    sim = simulator(server)
    await inbound(sim, text="hi")
    conv = await only_conversation(api)
    await wait_messages(api, conv["id"], 1)

    # Pretend the customer last wrote 30 hours ago, on both sides.
    await sim.post(
        "/_sim/window", json={"account_id": PAGE_ID, "user": PSID, "last_inbound_hours_ago": 30}
    )
    await _age_window(server, conv["id"], hours=30)
    reply = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Following up"}
    )
    assert reply.status_code == 201, reply.text

    async def sent() -> list[Any]:
        return (await sim.get("/_sim/sent", params={"account_id": PAGE_ID})).json()

    [request] = await eventually(sent)
    assert request["body"]["messaging_type"] == "MESSAGE_TAG"
    assert request["body"]["tag"] == "HUMAN_AGENT"
    assert request["response"]["status"] == 200

    # Eight days: even a human agent may not write any more.
    await _age_window(server, conv["id"], hours=8 * 24)
    refused = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hello?"}
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "window_closed"
    await sim.aclose()


async def test_window_closed_without_human_agent(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await messenger_channel(api, server, **CHANNEL, human_agent=False)
    sim = simulator(server)
    await inbound(sim, text="hi")
    conv = await only_conversation(api)
    await wait_messages(api, conv["id"], 1)
    await _age_window(server, conv["id"], hours=25)
    refused = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hello?"}
    )
    assert refused.status_code == 422
    assert "Human Agent" in refused.json()["error"]["message"]
    assert (await sim.get("/_sim/sent", params={"account_id": PAGE_ID})).json() == []
    await sim.aclose()


async def test_graph_errors_become_plain_sentences(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await messenger_channel(api, server, **CHANNEL)
    sim = simulator(server)
    await inbound(sim, text="hi")
    conv = await only_conversation(api)
    await wait_messages(api, conv["id"], 1)
    cases = [
        ({"code": 10, "subcode": 2018278}, "24-hour Messenger window has closed"),
        ({"code": 551, "subcode": 1545041}, "not available on Messenger"),
        ({"code": 190}, "reconnect the channel"),
    ]
    for failure, words in cases:
        await sim.post("/_sim/fail", json=failure)
        reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "x"})
        reply_id = reply.json()["id"]

        async def failed(reply_id: int = reply_id) -> dict[str, Any] | None:
            m = next(m for m in await thread(api, conv["id"]) if m["id"] == reply_id)
            return m if m["status"] == "failed" else None

        message = await eventually(failed)
        assert words in message["error_reason"], message
        assert message["error_code"] == str(failure["code"])

    # A rate limit (613) is retried, then goes through.
    await sim.post("/_sim/fail", json={"code": 613, "retry_after": 0})
    reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "again"})

    async def sent_ok() -> dict[str, Any] | None:
        m = next(m for m in await thread(api, conv["id"]) if m["id"] == reply.json()["id"])
        return m if m["status"] in ("sent", "delivered", "read") else None

    await eventually(sent_ok)
    await sim.aclose()


async def test_other_pages_entries_are_not_this_channels(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await messenger_channel(api, server, **CHANNEL)
    sim = simulator(server)
    await inbound(sim, text="mine")
    other = {
        "object": "page",
        "entry": [
            {
                "id": "999999999",
                "time": 1,
                "messaging": [
                    {
                        "sender": {"id": "1234567"},
                        "recipient": {"id": "999999999"},
                        "timestamp": 1750000000000,
                        "message": {"mid": "m_other", "text": "not yours"},
                    }
                ],
            }
        ],
    }
    resp = await sim.post("/_sim/deliver_raw", json={"account_id": PAGE_ID, "payload": other})
    assert resp.json()["status"] == 200
    conv = await only_conversation(api)
    await wait_messages(api, conv["id"], 1)
    assert await count(server, InboundEvent) == 1
    assert await count(server, Message) == 1
    await sim.aclose()


async def _age_window(server: Server, conversation_id: int, *, hours: float) -> None:
    """Move our record of the customer's last message back in time (the clock cannot be)."""
    from datetime import timedelta

    from tidings.storage.models import ConversationChannel
    from tidings.storage.types import utcnow

    async with server.runtime.db.write() as s:
        for row in await s.scalars(
            select(ConversationChannel).where(
                ConversationChannel.conversation_id == conversation_id
            )
        ):
            row.last_inbound_at = utcnow() - timedelta(hours=hours)
