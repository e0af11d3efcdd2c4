"""Telegram: customers sharing their own number (issue 16 #3), over real HTTP.

A Bot API `message.contact` whose `user_id` is the sender's `from.id` is the customer's own
number, vouched for by Telegram (docs/channels/telegram.md, "Shared contacts"). It used to be
ignored once the customer had written before (only a new contact took it). Now it becomes the
contact's verified E.164 phone, and the customer's WhatsApp contact with that number is offered
as a merge suggestion; a first message that is the shared contact links to it directly. A card
of someone else is never the sender's number. Fixtures: tests/fixtures/telegram/contact_*.json.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.channels.test_telegram import CHANNEL, SECRET, TOKEN
from tests.conftest import Owner, Server, eventually
from tests.core.test_whatsapp_e2e import APP_SECRET, PNID, whatsapp_channel
from tests.factories import simulator, telegram_channel

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "telegram"
CHAT = 424242
PHONE = "+351912345678"


def update(name: str) -> dict[str, Any]:
    return dict(orjson.loads((FIXTURES / f"{name}.json").read_bytes()))


def text_update(update_id: int, message_id: int, text: str) -> dict[str, Any]:
    shaped = copy.deepcopy(update("contact_own"))
    shaped["update_id"] = update_id
    message = shaped["message"]
    del message["contact"]
    # Before the fixtures (dated 1786500000…): the customer wrote first.
    message.update(message_id=message_id, text=text, date=1786499000 + message_id)
    return shaped


async def telegram_post(channel: dict[str, Any], body: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as client:
        resp = await client.post(
            channel["webhook_url"],
            content=orjson.dumps(body),
            headers={
                "Content-Type": "application/json",
                "X-Telegram-Bot-Api-Secret-Token": SECRET,
            },
        )
    assert resp.status_code == 200, resp.text


async def whatsapp_customer(channel: dict[str, Any]) -> None:
    """The same person on WhatsApp, whose number WhatsApp vouches for."""
    body = orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550783881",
                                    "phone_number_id": PNID,
                                },
                                "contacts": [{"profile": {"name": "Ana"}, "wa_id": PHONE[1:]}],
                                "messages": [
                                    {
                                        "from": PHONE[1:],
                                        "id": "wamid.ANA1",
                                        "timestamp": str(int(time.time())),
                                        "type": "text",
                                        "text": {"body": "oi, sou a Ana"},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    )
    sig = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    async with httpx.AsyncClient() as client:
        resp = await client.post(
            channel["webhook_url"],
            content=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={sig}"},
        )
    assert resp.status_code == 200, resp.text


async def conversations(api: httpx.AsyncClient, n: int) -> list[dict[str, Any]] | None:
    convs = list((await api.get("/api/v1/conversations")).json()["data"])
    return convs if len(convs) == n else None


async def message_count(api: httpx.AsyncClient, conv_id: int, n: int) -> bool:
    data = (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]
    return len(data) == n


async def test_own_contact_after_writing_becomes_the_phone_and_a_merge_suggestion(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    wa = await whatsapp_channel(server, api)
    tg = await telegram_channel(api, server, **CHANNEL)
    await whatsapp_customer(wa)
    await eventually(lambda: conversations(api, 1))
    await telegram_post(tg, text_update(815372001, 1, "olá"))
    convs = await eventually(lambda: conversations(api, 2))
    tg_conv = next(c for c in convs if c["last_channel_id"] == tg["id"])
    wa_conv = next(c for c in convs if c["last_channel_id"] == wa["id"])
    before = (await api.get(f"/api/v1/contacts/{tg_conv['contact_id']}")).json()
    assert before["phone"] is None

    await telegram_post(tg, update("contact_own"))
    await eventually(lambda: message_count(api, tg_conv["id"], 2))
    after = (await api.get(f"/api/v1/contacts/{tg_conv['contact_id']}")).json()
    assert after["phone"] == PHONE  # E.164, although Telegram sent it without "+"
    assert after["claimed_phone"] is None
    ctx = (await api.get(f"/api/v1/ui/conversations/{tg_conv['id']}/context")).json()
    assert [(d["id"], d["reason"]) for d in ctx["merge_suggestions"]] == [
        (wa_conv["contact_id"], "same phone number")
    ]

    # Someone else's card (Rui's user_id) is shown as a card, never taken as Ana's number.
    await telegram_post(tg, update("contact_other"))
    await eventually(lambda: message_count(api, tg_conv["id"], 3))
    again = (await api.get(f"/api/v1/contacts/{tg_conv['contact_id']}")).json()
    assert again["phone"] == PHONE


async def test_a_card_of_someone_else_is_not_the_senders_number(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    tg = await telegram_channel(api, server, **CHANNEL)
    await telegram_post(tg, text_update(815372001, 1, "olá"))
    [conv] = await eventually(lambda: conversations(api, 1))
    await telegram_post(tg, update("contact_other"))
    await eventually(lambda: message_count(api, conv["id"], 2))
    contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
    assert contact["phone"] is None and contact["claimed_phone"] is None
    msgs = (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["data"]
    assert msgs[1]["kind"] == "contact_card"
    assert msgs[1]["extra"]["contact"]["user_id"] == 777001


async def test_first_message_sharing_own_contact_joins_the_whatsapp_contact(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """A verified number on a new identity links it, per the same rule as SMS and WhatsApp."""
    wa = await whatsapp_channel(server, api)
    tg = await telegram_channel(api, server, **CHANNEL)
    await whatsapp_customer(wa)
    [wa_conv] = await eventually(lambda: conversations(api, 1))
    await telegram_post(tg, update("contact_own"))
    # One person, one inbox: the Telegram card lands in the WhatsApp conversation.
    await eventually(lambda: message_count(api, wa_conv["id"], 2))
    assert await conversations(api, 1)
    contact = (await api.get(f"/api/v1/contacts/{wa_conv['contact_id']}")).json()
    assert sorted(i["channel_kind"] for i in contact["identities"]) == ["telegram", "whatsapp"]


async def test_the_sandbox_customer_shares_their_contact(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await telegram_channel(api, server, **CHANNEL)
    async with simulator(server, "telegram", timeout=10) as sim:
        base = {"token": TOKEN, "chat_id": CHAT, "first_name": "Ana"}
        assert (await sim.post("/_sim/inbound", json={**base, "text": "olá"})).status_code == 200
        [conv] = await eventually(lambda: conversations(api, 1))
        shared = await sim.post("/_sim/inbound", json={**base, "share_contact": PHONE})
        assert shared.status_code == 200, shared.text
    await eventually(lambda: message_count(api, conv["id"], 2))
    contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
    assert contact["phone"] == PHONE
