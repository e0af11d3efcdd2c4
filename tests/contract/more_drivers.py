"""Contract drivers for the SMS (Twilio, Vonage, SMPP), WeChat, RBM, legacy GBM and Telegram
channels. Each one plays the customer through its sandbox simulator over real HTTP (SMPP: over
TCP to the loopback SMSC); `drivers.py` adds them to DRIVERS.

What "the same message again" means differs per provider, and each driver does what that
provider really does: Twilio and Vonage post the same MessageSid/messageId again, WeChat pushes
the same MsgId, Google redelivers the same messageId/requestId, Telegram sends the same
update_id, and an SMSC retransmits the same deliver_sm PDU (same sequence number, same bind).

`final_status` says how far a reply gets on each: SMS and Google channels report delivery (RBM
and GBM also reads); WeChat's Customer Service API and Telegram's Bot API report no receipts at
all, so a reply ends at "sent" there.
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
import orjson
from sqlalchemy import select

from tests.conftest import Server, eventually, sandbox_headers
from tidings.storage.models import Message

SMS_CUSTOMER = "+447911123456"
GOOGLE_TOKEN = "SJENCPGJESMGUFPY"


def _client(server: Server, kind: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/{kind}", timeout=20
    )


async def _post(server: Server, kind: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with _client(server, kind) as sim:
        resp = await sim.post(path, json=body)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def _get(server: Server, kind: str, path: str, params: dict[str, str]) -> Any:
    async with _client(server, kind) as sim:
        resp = await sim.get(path, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def _stored_id(server: Server, kind: str, text: str) -> str:
    """The provider id Tidings stored for the inbound message with `text` on `kind`."""
    from tidings.storage.models import Channel

    async def find() -> str | None:
        async with server.runtime.db.read() as s:
            found = await s.scalar(
                select(Message.provider_message_id)
                .join(Channel, Channel.id == Message.channel_id)
                .where(Channel.kind == kind, Message.body == text, Message.direction == "in")
                .order_by(Message.id.desc())
                .limit(1)
            )
        return found

    pid: str = await eventually(find)
    return pid


class TwilioDriver:
    kind: ClassVar[str] = "twilio"
    final_status: ClassVar[str] = "delivered"
    adapted: ClassVar[dict[str, str]] = {
        "test_unknown_type_is_a_visible_unsupported_message": "SMS has no message types: the "
        "unknown case is a Twilio post with neither Body nor media"
    }
    account_sid = "AC" + "c0" * 16
    number = "+14155550100"

    def config(self, server: Server) -> dict[str, Any]:
        return {
            "account_sid": self.account_sid,
            "auth_token": "contract-auth-token",
            "from_number": self.number,
            "api_base_url": f"{server.url}/sandbox/twilio",
        }

    async def customer_text(self, server: Server, text: str, message_id: str | None = None) -> str:
        body: dict[str, Any] = {"from": SMS_CUSTOMER, "to": self.number, "text": text}
        if message_id:
            body["sid"] = message_id  # Twilio posting the same MessageSid again
        result = await _post(server, self.kind, "/_sim/inbound", body)
        assert result["status"] == 200, result
        return str(result["sid"])

    async def customer_unknown(self, server: Server) -> None:
        # No Body and no media: content Twilio forwards that is not SMS text.
        body = {"from": SMS_CUSTOMER, "to": self.number, "text": None}
        assert (await _post(server, self.kind, "/_sim/inbound", body))["status"] == 200

    def forged_request(self) -> tuple[bytes, dict[str, str]]:
        form = {
            "MessageSid": "SM" + "f" * 32,
            "AccountSid": self.account_sid,
            "From": SMS_CUSTOMER,
            "To": self.number,
            "Body": "forged",
        }
        return urlencode(form).encode(), {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": base64.b64encode(b"\0" * 20).decode(),
        }

    def forged_query(self) -> dict[str, str]:
        return {}

    async def received(self, server: Server) -> list[str]:
        sent = await _get(server, self.kind, "/_sim/sent", {"account_sid": self.account_sid})
        return [dict(s["params"]).get("Body", "") for s in sent]


class VonageDriver:
    kind: ClassVar[str] = "vonage"
    final_status: ClassVar[str] = "delivered"
    adapted: ClassVar[dict[str, str]] = {
        "test_unknown_type_is_a_visible_unsupported_message": "a binary SMS (type=binary, "
        "data + udh, no text)"
    }
    api_key = "contract1"

    def config(self, server: Server) -> dict[str, Any]:
        return {
            "api_key": self.api_key,
            "api_secret": "contract-api-secret",
            "signature_secret": "contract-signature-secret",
            "signature_method": "sha256",
            "from_number": "+14155550100",
            "api_base_url": f"{server.url}/sandbox/vonage",
        }

    async def customer_text(self, server: Server, text: str, message_id: str | None = None) -> str:
        body: dict[str, Any] = {"api_key": self.api_key, "from": SMS_CUSTOMER, "text": text}
        if message_id:
            body["message_id"] = message_id  # Vonage retrying the same messageId
        result = await _post(server, self.kind, "/_sim/inbound", body)
        [mid] = result["message_ids"]
        return str(mid)

    async def customer_unknown(self, server: Server) -> None:
        # A binary SMS (hex `data` + `udh`, no text).
        body = {"api_key": self.api_key, "from": SMS_CUSTOMER, "text": "\x01bin", "type": "binary"}
        await _post(server, self.kind, "/_sim/inbound", body)

    def forged_request(self) -> tuple[bytes, dict[str, str]]:
        params = {
            "msisdn": SMS_CUSTOMER.lstrip("+"),
            "to": "14155550100",
            "messageId": "0A0000001234ABCD",
            "text": "forged",
            "type": "text",
            "timestamp": str(int(time.time())),
            "nonce": secrets.token_hex(8),
            "sig": "0" * 64,
        }
        return orjson.dumps(params), {"Content-Type": "application/json"}

    def forged_query(self) -> dict[str, str]:
        return {}

    async def received(self, server: Server) -> list[str]:
        sent = await _get(server, self.kind, "/_sim/sent", {"api_key": self.api_key})
        return [s["text"] for s in sent]


class SmppDriver:
    """SMPP has no message id on a customer's deliver_sm: Tidings derives one from the bind
    and the PDU (see channels/smpp/session.py), so this driver learns the id from what Tidings
    stored. A duplicate is the SMSC retransmitting the identical PDU. Nothing arrives over
    HTTP at all: the webhook URL refuses every request, which is what the forged-request case
    checks here."""

    kind: ClassVar[str] = "smpp"
    final_status: ClassVar[str] = "delivered"
    adapted: ClassVar[dict[str, str]] = {
        "test_bad_signature_stores_nothing": "SMPP has no webhook and no signature: the "
        "channel's webhook URL refuses every HTTP request, which is what this checks",
        "test_duplicate_changes_nothing": "a customer deliver_sm has no message id: the "
        "duplicate is the SMSC retransmitting the identical PDU on the same bind",
        "test_unknown_type_is_a_visible_unsupported_message": "8-bit binary user data "
        "(data_coding 0x04)",
    }
    system_id = "contract"
    sim_ids: ClassVar[dict[str, str]] = {}

    def config(self, server: Server) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": server.app.state.sandbox.smpp.port,
            "system_id": self.system_id,
            "password": "contract",
            "source_addr": "14155550111",
            "enquire_link_seconds": 0.5,
            "response_timeout_seconds": 2,
            "reconnect_min_seconds": 0.1,
            "reconnect_max_seconds": 0.4,
            "send_wait_seconds": 5,
        }

    async def customer_text(self, server: Server, text: str, message_id: str | None = None) -> str:
        if message_id:
            result = await _post(
                server,
                self.kind,
                "/_sim/inbound",
                {"system_id": self.system_id, "retransmit": self.sim_ids[message_id]},
            )
            assert result["retransmitted"] == 1, result
            return message_id
        result = await _post(
            server,
            self.kind,
            "/_sim/inbound",
            {"system_id": self.system_id, "from": SMS_CUSTOMER, "text": text},
        )
        pid = await _stored_id(server, self.kind, text)
        self.sim_ids[pid] = str(result["id"])
        return pid

    async def customer_unknown(self, server: Server) -> None:
        # 8-bit binary user data (data_coding 0x04) carries no text.
        body = {"system_id": self.system_id, "from": SMS_CUSTOMER, "text": "bin", "binary": True}
        await _post(server, self.kind, "/_sim/inbound", body)

    def forged_request(self) -> tuple[bytes, dict[str, str]]:
        return b'{"from": "447911123456", "text": "injected"}', {"Content-Type": "application/json"}

    def forged_query(self) -> dict[str, str]:
        return {}

    async def received(self, server: Server) -> list[str]:
        got = await _get(server, self.kind, "/_sim/submitted", {"system_id": self.system_id})
        return [s["text"] for s in got]


class WeChatDriver:
    kind: ClassVar[str] = "wechat"
    # The Customer Service API reports no delivery or read
    # (docs/channels/wechat.md#customer-service-messages).
    final_status: ClassVar[str] = "sent"
    adapted: ClassVar[dict[str, str]] = {
        "test_reply_reaches_the_simulator_and_statuses_come_back": "the Customer Service API "
        "reports no delivery or read, so a reply ends at sent",
        "test_bad_signature_stores_nothing": "WeChat signs the query string, not a header",
    }
    app_id = "wxcontract0001"
    user = "contract-follower"

    def config(self, server: Server) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "app_secret": "contract-app-secret",
            "token": "contracttoken",
            "api_base_url": f"{server.url}/sandbox/wechat",
        }

    async def customer_text(self, server: Server, text: str, message_id: str | None = None) -> str:
        msg_id = message_id or str(secrets.randbelow(2**62) + 2**60)
        body = {"app_id": self.app_id, "user": self.user, "text": text, "msg_id": int(msg_id)}
        result = await _post(server, self.kind, "/_sim/inbound", body)
        assert result["delivered"] is True, result
        return msg_id

    async def customer_unknown(self, server: Server) -> None:
        body = {"app_id": self.app_id, "user": self.user, "type": "hologram"}
        assert (await _post(server, self.kind, "/_sim/inbound", body))["delivered"] is True

    async def customer_named(self, server: Server, name: str, text: str) -> None:
        # The nickname comes from `cgi-bin/user/info`, never from the push.
        body = {"app_id": self.app_id, "user": self.user, "text": text, "name": name}
        assert (await _post(server, self.kind, "/_sim/inbound", body))["delivered"] is True

    def forged_request(self) -> tuple[bytes, dict[str, str]]:
        xml = (
            "<xml><ToUserName><![CDATA[gh_contract]]></ToUserName>"
            "<FromUserName><![CDATA[o" + "x" * 27 + "]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            "<Content><![CDATA[forged]]></Content><MsgId>1234567890123456</MsgId></xml>"
        )
        return xml.encode(), {"Content-Type": "text/xml"}

    def forged_query(self) -> dict[str, str]:
        return {"signature": "0" * 40, "timestamp": str(int(time.time())), "nonce": "12345"}

    async def received(self, server: Server) -> list[str]:
        sent = await _get(server, self.kind, "/_sim/sent", {"app_id": self.app_id})
        return [s["content"] for s in sent if s["msgtype"] == "text"]


class RbmDriver:
    kind: ClassVar[str] = "rbm"
    final_status: ClassVar[str] = "read"
    adapted: ClassVar[dict[str, str]] = {}
    agent = "contract-agent@rbm.goog"

    def config(self, server: Server) -> dict[str, Any]:
        return {
            "agent_id": self.agent,
            "webhook_client_token": GOOGLE_TOKEN,
            "access_token": "ya29.contract",
            "api_base_url": f"{server.url}/sandbox/rbm",
        }

    async def customer_text(self, server: Server, text: str, message_id: str | None = None) -> str:
        body: dict[str, Any] = {"agent_id": self.agent, "from": SMS_CUSTOMER, "text": text}
        if message_id:
            body["message_id"] = message_id  # Pub/Sub redelivering the same messageId
        return str((await _post(server, self.kind, "/_sim/inbound", body))["messageId"])

    async def customer_unknown(self, server: Server) -> None:
        body = {"agent_id": self.agent, "from": SMS_CUSTOMER, "other": {"hologram": {"x": 1}}}
        await _post(server, self.kind, "/_sim/inbound", body)

    def forged_request(self) -> tuple[bytes, dict[str, str]]:
        data = orjson.dumps(
            {"senderPhoneNumber": SMS_CUSTOMER, "messageId": "forged", "text": "forged"}
        )
        envelope = {
            "message": {
                "data": base64.b64encode(data).decode(),
                "messageId": "1",
                "publishTime": "2026-01-01T00:00:00Z",
                "attributes": {},
            },
            "subscription": "projects/rbm/subscriptions/contract",
        }
        sig = base64.b64encode(b"\0" * 64).decode()
        return orjson.dumps(envelope), {"X-Goog-Signature": sig}

    def forged_query(self) -> dict[str, str]:
        return {}

    async def received(self, server: Server) -> list[str]:
        calls = await _get(server, self.kind, "/_sim/sent", {"agent_id": self.agent})
        return [
            c["body"]["contentMessage"]["text"]
            for c in calls
            if c.get("method") == "agentMessages" and c.get("ok", True) and "body" in c
        ]


class GbmDriver:
    """Google Business Messages was retired on 2024-07-31; the legacy adapter stays tested."""

    kind: ClassVar[str] = "gbm"
    final_status: ClassVar[str] = "read"
    adapted: ClassVar[dict[str, str]] = {}
    agent = "contract-legacy-agent"
    conversation = "conv-contract"

    def config(self, server: Server) -> dict[str, Any]:
        return {
            "agent_id": self.agent,
            "webhook_client_token": GOOGLE_TOKEN,
            "access_token": "ya29.contract",
            "api_base_url": f"{server.url}/sandbox/gbm",
        }

    async def customer_text(self, server: Server, text: str, message_id: str | None = None) -> str:
        body: dict[str, Any] = {
            "agent_id": self.agent,
            "conversation_id": self.conversation,
            "text": text,
        }
        if message_id:
            body["message_id"] = message_id  # Google retrying the identical request
        return str((await _post(server, self.kind, "/_sim/inbound", body))["messageId"])

    async def customer_unknown(self, server: Server) -> None:
        body = {
            "agent_id": self.agent,
            "conversation_id": self.conversation,
            "other": {"hologram": {"x": 1}},
        }
        await _post(server, self.kind, "/_sim/inbound", body)

    def forged_request(self) -> tuple[bytes, dict[str, str]]:
        body = orjson.dumps(
            {
                "conversationId": self.conversation,
                "requestId": "forged",
                "message": {"messageId": "forged", "text": "forged"},
            }
        )
        return body, {"X-Goog-Signature": base64.b64encode(b"\0" * 64).decode()}

    def forged_query(self) -> dict[str, str]:
        return {}

    async def received(self, server: Server) -> list[str]:
        calls = await _get(server, self.kind, "/_sim/sent", {"agent_id": self.agent})
        return [c["body"]["text"] for c in calls if "error" not in c and "text" in c["body"]]


class TelegramDriver:
    kind: ClassVar[str] = "telegram"
    # The Bot API has no delivery or read receipts for bots.
    final_status: ClassVar[str] = "sent"
    adapted: ClassVar[dict[str, str]] = {
        "test_reply_reaches_the_simulator_and_statuses_come_back": "bots get no delivery or "
        "read receipts, so a reply ends at sent",
    }
    token = "7000000001:AAH-contract_token_for_the_suite"
    chat = 515151
    updates: ClassVar[dict[str, int]] = {}

    def config(self, server: Server) -> dict[str, Any]:
        return {
            "bot_token": self.token,
            "secret_token": "contract_secret-token",
            "api_base_url": f"{server.url}/sandbox/telegram",
        }

    async def customer_text(self, server: Server, text: str, message_id: str | None = None) -> str:
        if message_id:
            body: dict[str, Any] = {"token": self.token, "redeliver": self.updates[message_id]}
        else:
            body = {"token": self.token, "chat_id": self.chat, "first_name": "Ana", "text": text}
        result = await _post(server, self.kind, "/_sim/inbound", body)
        pid = f"{self.chat}:{result['message_id']}"
        self.updates[pid] = int(result["update_id"])
        return pid

    async def customer_unknown(self, server: Server) -> None:
        body = {"token": self.token, "chat_id": self.chat, "other": {"dice": {"value": 6}}}
        await _post(server, self.kind, "/_sim/inbound", body)

    async def customer_named(self, server: Server, name: str, text: str) -> None:
        # The name travels in the update's `from.first_name` / `last_name`.
        first, _, last = name.partition(" ")
        body = {
            "token": self.token,
            "chat_id": self.chat,
            "first_name": first,
            "last_name": last,
            "text": text,
        }
        await _post(server, self.kind, "/_sim/inbound", body)

    def forged_request(self) -> tuple[bytes, dict[str, str]]:
        update = {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "from": {"id": self.chat, "is_bot": False, "first_name": "X"},
                "chat": {"id": self.chat, "type": "private"},
                "date": int(time.time()),
                "text": "forged",
            },
        }
        return orjson.dumps(update), {"X-Telegram-Bot-Api-Secret-Token": "not-the-secret"}

    def forged_query(self) -> dict[str, str]:
        return {}

    async def received(self, server: Server) -> list[str]:
        calls = await _get(server, self.kind, "/_sim/sent", {"token": self.token})
        return [c["params"]["text"] for c in calls if c["method"] == "sendMessage" and c["ok"]]


MORE_DRIVERS: list[Any] = [
    TwilioDriver(),
    VonageDriver(),
    SmppDriver(),
    WeChatDriver(),
    RbmDriver(),
    GbmDriver(),
    TelegramDriver(),
]
