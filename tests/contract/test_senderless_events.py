"""Contract case over every channel whose provider sends events that name no sender (issue 16):
such an event is acknowledged, stored once and processed — never a failed inbound event that
can only be replayed into the same failure — and it creates no contact of nobody.

Each provider's real shape, signed as the provider signs it, is built below per kind; a channel
joins by adding one builder. Today: WhatsApp `user_changed_user_id` (no `from`, no contacts[];
docs/channels/whatsapp.md) about a user Tidings never heard from, and a Telegram `poll` update
(no `from`, no `chat`; Bot API `Update.poll`), a LINE failed account link, a Viber
`client_status`, and the Messenger and Instagram page-level `policy-enforcement` event (only a
`recipient`: the Page or account; docs/channels/messenger.md, "Page events"), which becomes a
channel notice (issue 16 #6). SMS, RBM, GBM, WeChat and the API channel name a sender in every
event.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from tests.conftest import Owner, Server, eventually
from tests.contract.drivers import DRIVERS, Driver
from tidings.channels.line.webhook import signature as line_signature
from tidings.domain.enums import InboundState
from tidings.storage.models import Contact, InboundEvent, Message

Signed = tuple[bytes, dict[str, str]]


def _whatsapp(config: dict[str, Any]) -> Signed:
    message = {
        "id": f"wamid.contract-system-{time.time_ns()}",
        "timestamp": str(int(time.time())),
        "type": "system",
        "system": {
            "body": "User changed from US.11111111111111111111 to US.22222222222222222222",
            "user_id": "US.22222222222222222222",
            "previous_user_id": "US.11111111111111111111",
            "type": "user_changed_user_id",
        },
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": config["display_phone_number"],
            "phone_number_id": config["phone_number_id"],
        },
        "messages": [message],
    }
    body = orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}
            ],
        }
    )
    sig = hmac.new(config["app_secret"].encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature-256": f"sha256={sig}"}


def _telegram(config: dict[str, Any]) -> Signed:
    poll = {
        "id": "5436025542359367682",
        "question": "Which size?",
        "options": [{"text": "S", "voter_count": 0}, {"text": "M", "voter_count": 1}],
        "total_voter_count": 1,
        "is_closed": True,
        "is_anonymous": True,
        "type": "regular",
        "allows_multiple_answers": False,
    }
    body = orjson.dumps({"update_id": 910000000 + time.time_ns() % 1000000, "poll": poll})
    return body, {"X-Telegram-Bot-Api-Secret-Token": config["secret_token"]}


def _line(config: dict[str, Any]) -> Signed:
    # A failed account link is the one LINE event without `source` (docs/channels/line.md).
    event = {
        "type": "accountLink",
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "webhookEventId": f"01HZ{time.time_ns() % 10**22:022d}",
        "deliveryContext": {"isRedelivery": False},
        "link": {"result": "failed", "nonce": "Vb771wDYtXuammLszK6h9A"},
    }
    body = orjson.dumps({"destination": "U8e742f61d673b39c7fff3cecb7536ef0", "events": [event]})
    return body, {"x-line-signature": line_signature(config["channel_secret"], body)}


def _viber(config: dict[str, Any]) -> Signed:
    # An event Viber lists in set_webhook answers without documenting it; it names no user.
    body = orjson.dumps(
        {
            "event": "client_status",
            "timestamp": int(time.time() * 1000),
            "chat_hostname": "SN-CHAT-05_",
            "message_token": 5466394344559121456 + time.time_ns() % 1000,
        }
    )
    sig = hmac.new(config["auth_token"].encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Viber-Content-Signature": sig}


def _page_event(product: str, account_key: str, key: str) -> Callable[[dict[str, Any]], Signed]:
    def build(config: dict[str, Any]) -> Signed:
        account = config[account_key]
        now = int(time.time() * 1000)
        element = {
            "recipient": {"id": account},
            "timestamp": now,
            # Meta's reference and its older payloads spell the key differently: both arrive.
            key: {"action": "warning", "reason": "Your bot sent messages outside the window."},
        }
        body = orjson.dumps(
            {"object": product, "entry": [{"id": account, "time": now, "messaging": [element]}]}
        )
        sig = hmac.new(config["app_secret"].encode(), body, hashlib.sha256).hexdigest()
        return body, {"X-Hub-Signature-256": f"sha256={sig}"}

    return build


SENDERLESS: dict[str, Callable[[dict[str, Any]], Signed]] = {
    "messenger": _page_event("page", "page_id", "policy-enforcement"),
    "instagram": _page_event("instagram", "instagram_account_id", "policy_enforcement"),
    "whatsapp": _whatsapp,
    "telegram": _telegram,
    "line": _line,
    "viber": _viber,
}
WITH_SENDERLESS = [d for d in DRIVERS if d.kind in SENDERLESS]


async def _count(server: Server, model: type) -> int:
    async with server.runtime.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize("driver", WITH_SENDERLESS, ids=[d.kind for d in WITH_SENDERLESS])
async def test_senderless_system_event_does_not_fail(
    server: Server, owner: Owner, api: httpx.AsyncClient, driver: Driver
) -> None:
    config = driver.config(server)
    resp = await api.post(
        "/api/v1/channels",
        json={"kind": driver.kind, "name": f"{driver.kind} (contract)", "config": config},
    )
    assert resp.status_code == 201, resp.text
    body, headers = SENDERLESS[driver.kind](config)
    async with httpx.AsyncClient() as client:
        ack = await client.post(
            resp.json()["webhook_url"],
            content=body,
            headers={"Content-Type": "application/json", **headers},
        )
    assert ack.status_code == 200, ack.text

    async def processed() -> list[tuple[str, str | None]] | None:
        async with server.runtime.db.read() as s:
            rows = (await s.execute(select(InboundEvent.state, InboundEvent.error))).all()
        states = [(str(state), error) for state, error in rows]
        return states if states and states[0][0] != InboundState.PENDING else None

    assert await eventually(processed) == [("done", None)]
    assert await _count(server, Contact) == 0
    assert await _count(server, Message) == 0
    # And the channel goes on: the customer's next text still becomes a conversation.
    await driver.customer_text(server, "still here")

    async def conversations() -> list[Any]:
        return (await api.get("/api/v1/conversations")).json()["data"]

    assert len(await eventually(conversations)) == 1
