"""API channel adapter.

Inbound (`POST /webhooks/api/{channel_id}`), signed with the channel's `secret`:

    {"messages": [{"id": "ext-1", "from": {"id": "cust-42", "name": "Ana", "phone": "+4915..."},
                   "text": "Hello", "timestamp": 1750000000, "reply_to": "ext-0"}],
     "statuses": [{"id": "ext-reply-9", "status": "delivered", "timestamp": 1750000001,
                   "error": "optional reason when failed"}]}

`from.phone` is whatever the integrator passes on — on a website, what the visitor typed — so it
is a *claim*: kept as the contact's `claimed_phone` and offered as a merge suggestion, never
used to join an existing contact (docs/architecture.md, "Contact resolution").

Outbound: agent replies are POSTed to the channel's `webhook_url`, signed with the same secret:

    {"event": "message.outgoing", "message": {"id": 17, "conversation_id": 3, "to": "cust-42",
     "kind": "text", "text": "Hi Ana", "reply_to": "ext-1"}}

The receiver answers 2xx, optionally with `{"id": "<its id>"}` which later statuses refer to.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
import orjson
from pydantic import BaseModel, Field

from tidings import signing
from tidings.channels.base import (
    Adapter,
    Capabilities,
    OutboundMessage,
    Permanent,
    RawEvent,
    Retriable,
    SendOutcome,
    Sent,
    WebhookReply,
    WebhookRequest,
    json_of,
)
from tidings.domain.enums import InboundLane, MessageKind, MessageStatus
from tidings.domain.errors import PayloadError
from tidings.domain.events import CanonicalEvent, InboundMessage, Sender, StatusUpdate

_STATUSES = {
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.READ,
    "failed": MessageStatus.FAILED,
}


class ApiChannelConfig(BaseModel):
    secret: str = Field(min_length=16, description="HMAC-SHA256 key for both directions")
    webhook_url: str | None = Field(
        default=None, description="Where agent replies are POSTed; none means inbound only"
    )


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


class ApiChannelAdapter(Adapter[ApiChannelConfig]):
    kind: ClassVar[str] = "api"
    label: ClassVar[str] = "API"
    capabilities: ClassVar[Capabilities] = Capabilities(
        color="#7c3aed",
        icon="code-xml",
        campaign_text=False,
        text_max_length=65_536,
        receipts=("sent", "delivered", "read"),
        rate_per_second=50.0,
        max_webhook_bytes=1_000_000,
    )
    config_model: ClassVar[type[BaseModel]] = ApiChannelConfig
    secret_fields: ClassVar[frozenset[str]] = frozenset({"secret"})
    handshake_refusal: ClassVar[str] = (
        "the API channel has no verification handshake; POST signed events"
    )

    def verify(self, config: Any, request: WebhookRequest) -> None:
        assert isinstance(config, ApiChannelConfig)
        signing.verify(config.secret, request.headers, request.body)

    def split(self, config: Any, request: WebhookRequest) -> list[RawEvent]:
        doc = json_of(request.body, "body is not JSON: {exc}")
        if not isinstance(doc, dict):
            raise PayloadError("body must be a JSON object with 'messages' and/or 'statuses'")
        messages, statuses = doc.get("messages", []), doc.get("statuses", [])
        if not isinstance(messages, list) or not isinstance(statuses, list):
            raise PayloadError("'messages' and 'statuses' must be arrays")
        if not messages and not statuses:
            raise PayloadError("body has neither 'messages' nor 'statuses'")
        return [self._raw("message", m) for m in messages] + [
            self._raw("status", s) for s in statuses
        ]

    @staticmethod
    def _raw(what: str, item: Any) -> RawEvent:
        payload = orjson.dumps({what: item})
        if not isinstance(item, dict) or not item.get("id"):
            # No id: still stored (and failed visibly by parse), keyed by its content.
            key = f"{what}-noid:{hashlib.sha256(payload).hexdigest()}"
        elif what == "message":
            key = f"msg:{item['id']}"
        else:
            key = f"status:{item['id']}:{item.get('status')}"
        occurred = _timestamp(item.get("timestamp")) if isinstance(item, dict) else None
        lane = InboundLane.STATUS if what == "status" else InboundLane.CUSTOMER
        return RawEvent(key=key[:300], payload=payload, occurred_at=occurred, lane=lane)

    def parse(self, config: Any, payload: bytes) -> list[CanonicalEvent]:
        doc = orjson.loads(payload)
        if "message" in doc:
            return [self._message(doc["message"])]
        return [self._status(doc["status"])]

    def _message(self, item: Any) -> InboundMessage:
        if not isinstance(item, dict) or not item.get("id"):
            raise PayloadError("message needs an 'id'")
        sender = item.get("from")
        if not isinstance(sender, dict) or not sender.get("id"):
            raise PayloadError("message.from.id is required")
        text = item.get("text")
        if text is not None and not isinstance(text, str):
            raise PayloadError("message.text must be a string")
        return InboundMessage(
            provider_message_id=str(item["id"]),
            sender=Sender(
                address=str(sender["id"]),
                name=sender.get("name") if isinstance(sender.get("name"), str) else None,
                phone=sender.get("phone") if isinstance(sender.get("phone"), str) else None,
                # Nobody vouches for it: a claim, never a link to another customer.
                phone_verified=False,
            ),
            occurred_at=_timestamp(item.get("timestamp")) or datetime.now(UTC),
            kind=MessageKind.TEXT if text is not None else MessageKind.UNSUPPORTED,
            text=text,
            reply_to_provider_id=str(item["reply_to"]) if item.get("reply_to") else None,
            extra={} if text is not None else {"type": "no text"},
        )

    def _status(self, item: Any) -> StatusUpdate:
        if not isinstance(item, dict) or not item.get("id"):
            raise PayloadError("status needs an 'id'")
        status = _STATUSES.get(str(item.get("status")))
        if status is None:
            raise PayloadError(f"unknown status {item.get('status')!r}; use {sorted(_STATUSES)}")
        error = item.get("error")
        return StatusUpdate(
            provider_message_id=str(item["id"]),
            status=status,
            occurred_at=_timestamp(item.get("timestamp")) or datetime.now(UTC),
            error_reason=str(error) if error and status == MessageStatus.FAILED else None,
        )

    def ack(self, config: Any, request: WebhookRequest) -> WebhookReply:
        return WebhookReply(200, b'{"ok":true}', "application/json")

    async def send(
        self, config: Any, message: OutboundMessage, http: httpx.AsyncClient
    ) -> SendOutcome:
        assert isinstance(config, ApiChannelConfig)
        if not config.webhook_url:
            return Permanent("This API channel has no webhook URL, so replies cannot be sent.")
        body = orjson.dumps(
            {
                "event": "message.outgoing",
                "message": {
                    "id": message.message_id,
                    "conversation_id": message.conversation_id,
                    "to": message.to,
                    "kind": str(message.kind),
                    "text": message.text,
                    "reply_to": message.reply_to_provider_id,
                },
            }
        )
        headers = {"Content-Type": "application/json", **signing.sign_headers(config.secret, body)}
        # The receiver can dedupe retries on this key (our message id).
        headers["Idempotency-Key"] = f"tidings-message-{message.message_id}"
        try:
            resp = await http.post(config.webhook_url, content=body, headers=headers, timeout=10.0)
        except httpx.TimeoutException:
            return Retriable("The receiving system did not answer in time.")
        except httpx.HTTPError as exc:
            return Retriable(f"Could not reach the receiving system ({type(exc).__name__}).")
        if resp.status_code == 429 or resp.status_code >= 500:
            return Retriable(
                f"The receiving system answered {resp.status_code}; will retry.",
                retry_after=_retry_after(resp),
                code=str(resp.status_code),
            )
        if resp.status_code >= 400:
            return Permanent(
                f"The receiving system refused the message ({resp.status_code}).",
                code=str(resp.status_code),
            )
        external_id: str | None = None
        try:
            data = resp.json()
            if isinstance(data, dict) and data.get("id"):
                external_id = str(data["id"])
        except ValueError:
            external_id = None
        return Sent(external_id or f"tidings-{message.message_id}")


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if value and value.strip().isdigit():
        return float(value)
    return None
