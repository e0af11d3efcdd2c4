"""Google Business Messages channel (kind `gbm`) — RETIRED.

Google shut Business Messages down on 2024-07-31 (new conversations stopped on 2024-07-15;
docs/channels/gbm.md#retirement). This adapter follows the last documented API
(docs/channels/gbm.md#webhook, docs/channels/gbm.md#sending) so that existing data, imports and
replays keep working; the live successor is RCS Business Messaging (`tidings.channels.rbm`). New
channels should use RBM.

Identity: the GBM `conversationId` (Business Messages never revealed a phone number).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
import orjson
from pydantic import BaseModel

from tidings.channels import google_common as google
from tidings.channels.base import (
    Capabilities,
    OutboundMessage,
    RawEvent,
    SendOutcome,
    Sent,
    WebhookRequest,
    json_of,
)
from tidings.channels.config_fields import ApiBaseUrl
from tidings.channels.google_common import AgentAdapter, AgentConfig
from tidings.domain.enums import InboundLane, MessageKind
from tidings.domain.errors import PayloadError
from tidings.domain.events import (
    AttachmentRef,
    CanonicalEvent,
    Ignored,
    InboundMessage,
    Sender,
    StatusUpdate,
)

__all__ = ["GbmAdapter", "GbmConfig"]

SCOPE = "https://www.googleapis.com/auth/businessmessages"
PRODUCT = "Google Business Messages"
GONE = (
    "This Business Messages conversation no longer exists; Google retired Business Messages "
    "on 2024-07-31. Reach the customer on another channel (RCS, SMS, WhatsApp)."
)
_MESSAGE_NAME = re.compile(r"^conversations/[^/]+/messages/([^/]+)$")


class GbmConfig(AgentConfig):
    # The partner key (`webhook_client_token`) keys X-Goog-Signature over the raw body here.
    representative_name: str = "Support"
    api_base_url: ApiBaseUrl = "https://businessmessages.googleapis.com"


class GbmAdapter(AgentAdapter[GbmConfig]):
    kind: ClassVar[str] = "gbm"
    label: ClassVar[str] = "Google Business Messages (retired 2024-07-31)"
    capabilities: ClassVar[Capabilities] = Capabilities(
        color="#4f46e5",
        icon="store",
        text_max_length=3072,
        # Agents could answer for 30 days after the user's last message
        # (docs/channels/gbm.md#sending).
        service_window_hours=30 * 24,
        receipts=("sent", "delivered", "read"),
        rate_per_second=10.0,
    )
    config_model: ClassVar[type[BaseModel]] = GbmConfig
    handshake_refusal: ClassVar[str] = (
        "Business Messages verifies webhooks with a POST of clientToken"
    )

    def verify(self, config: Any, request: WebhookRequest) -> None:
        token = self.cfg(config).webhook_client_token
        if google.verification_secret(token, request.body) is not None:
            return
        # Unlike RBM, the signature covers the raw request body (docs/channels/gbm.md#webhook;
        # our tests compute their own signed examples).
        google.check_signature(token, request.headers, request.body)

    def split(self, config: Any, request: WebhookRequest) -> list[RawEvent]:
        if google.verification_secret(self.cfg(config).webhook_client_token, request.body):
            return []
        doc = json_of(request.body, "body is not JSON: {exc}")
        if not isinstance(doc, dict) or not doc.get("requestId"):
            raise PayloadError("a Business Messages request needs a requestId")
        # requestId is the documented dedupe key (docs/channels/gbm.md#webhook).
        return [
            RawEvent(
                key=f"req:{doc['requestId']}"[:300],
                payload=request.body,
                occurred_at=google.timestamp(doc.get("sendTime")) or datetime.now(UTC),
                # Delivery/read receipts may wait behind a customer's messages.
                lane=InboundLane.STATUS if "receipts" in doc else InboundLane.CUSTOMER,
            )
        ]

    def parse(self, config: Any, payload: bytes) -> list[CanonicalEvent]:
        doc = orjson.loads(payload)
        conversation = doc.get("conversationId")
        if not isinstance(conversation, str) or not conversation:
            raise PayloadError("conversationId is missing")
        info = (
            doc.get("context", {}).get("userInfo", {})
            if isinstance(doc.get("context"), dict)
            else {}
        )
        name = info.get("displayName") if isinstance(info, dict) else None
        sender = Sender(address=conversation, name=name if isinstance(name, str) else None)
        when = google.timestamp(doc.get("sendTime")) or datetime.now(UTC)
        message = doc.get("message")
        if isinstance(message, dict) and message.get("messageId"):
            mid = str(message["messageId"])
            if isinstance(message.get("text"), str):
                return [InboundMessage(mid, sender, when, MessageKind.TEXT, message["text"])]
            image = message.get("image")
            url = image.get("contentInfo", {}).get("fileUrl") if isinstance(image, dict) else None
            if isinstance(url, str):
                ref = AttachmentRef(kind="image", url=url)
                return [InboundMessage(mid, sender, when, MessageKind.MEDIA, attachments=(ref,))]
            return [
                InboundMessage(
                    mid, sender, when, MessageKind.UNSUPPORTED, extra={"type": "message"}
                )
            ]
        reply = doc.get("suggestionResponse")
        if isinstance(reply, dict):
            mid = str(reply.get("message") or doc["requestId"])
            return [
                InboundMessage(
                    f"suggestion:{doc['requestId']}",
                    sender,
                    when,
                    MessageKind.INTERACTIVE,
                    str(reply.get("text") or reply.get("postbackData") or ""),
                    extra={"postback_data": reply.get("postbackData"), "in_reply_to": mid},
                )
            ]
        receipts = doc.get("receipts")
        if isinstance(receipts, dict) and isinstance(receipts.get("receipts"), list):
            events: list[CanonicalEvent] = []
            for r in receipts["receipts"]:
                if not isinstance(r, dict):
                    continue
                status = google.RECEIPTS.get(str(r.get("receiptType")))
                match = _MESSAGE_NAME.match(str(r.get("message")))
                if status is not None and match is not None:
                    events.append(
                        StatusUpdate(match.group(1), status, when, recipient=conversation)
                    )
            return events or [Ignored("receipts without known types")]
        kinds = [k for k in ("userStatus", "surveyResponse", "authenticationResponse") if k in doc]
        return [Ignored(f"Business Messages {kinds[0] if kinds else 'unknown'} event")]

    async def send(
        self, config: Any, message: OutboundMessage, http: httpx.AsyncClient
    ) -> SendOutcome:
        c = self.cfg(config)
        # Agent-assigned and derived from ours: a reused messageId is ignored
        # (docs/channels/gbm.md#sending).
        mid = f"tidings-{c.agent_id}-{message.message_id}"
        body: dict[str, Any] = {
            "messageId": mid,
            "representative": {"representativeType": "HUMAN", "displayName": c.representative_name},
        }
        if message.attachments and message.attachments[0].url:
            body["image"] = {"contentInfo": {"fileUrl": message.attachments[0].url}}
        else:
            body["text"] = message.text or ""
        url = f"{c.api_base_url}/v1/conversations/{quote(message.to, safe='')}/messages"
        resp = await google.call(c, http, SCOPE, PRODUCT, "POST", url, body=body)
        if not isinstance(resp, httpx.Response):
            return resp
        if resp.status_code == 200:
            return Sent(mid)
        return google.error_outcome(resp, PRODUCT, GONE)
