"""Vonage (Nexmo) SMS API channel: inbound SMS and delivery receipts over signed webhooks, and
the send API. Protocol facts: docs/channels/vonage.md#protocol-facts.

Identity is the customer's E.164 number, so an SMS contact meets the same person's WhatsApp
identity (Sender.phone).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from tidings.channels.base import (
    Adapter,
    Capabilities,
    RawEvent,
    WebhookReply,
    WebhookRequest,
)
from tidings.channels.vonage import client, webhook
from tidings.channels.vonage.config import VonageConfig

__all__ = ["VonageAdapter", "VonageConfig"]


class VonageAdapter(Adapter[VonageConfig]):
    kind: ClassVar[str] = "vonage"
    label: ClassVar[str] = "SMS (Vonage)"
    capabilities: ClassVar[Capabilities] = Capabilities(
        color="#b45309",
        icon="smartphone",
        # Vonage concatenates long texts itself, up to 6 parts is the usual advice
        # (docs/channels/vonage.md#send-api); the policy layer counts segments.
        text_max_length=918,
        receipts=("sent", "delivered"),
        # Segment/encoding policy and STOP/START/HELP keywords apply.
        sms=True,
        # Vonage's default SMS API throughput: 30 requests/s per API key
        # (docs/channels/vonage.md#send-api).
        rate_per_second=30.0,
        max_webhook_bytes=64 * 1024,
    )
    config_model: ClassVar[type[BaseModel]] = VonageConfig
    secret_fields: ClassVar[frozenset[str]] = frozenset({"api_secret", "signature_secret"})
    parse_payload = staticmethod(webhook.parse)
    send_with = staticmethod(client.send_sms)

    def handshake(self, config: Any, request: WebhookRequest) -> WebhookReply:
        # Vonage can also call with GET; Tidings stores events only from POST, so say so.
        return WebhookReply(
            405,
            b"Set the Vonage webhook method to POST-JSON (or POST) for this URL.",
        )

    def verify(self, config: Any, request: WebhookRequest) -> None:
        webhook.verify(self.cfg(config), request)

    def split(self, config: Any, request: WebhookRequest) -> list[RawEvent]:
        return webhook.split(request)

    def ack(self, config: Any, request: WebhookRequest) -> WebhookReply:
        # Vonage wants 200 or 204, otherwise it retries for 24 h
        # (docs/channels/vonage.md#inbound-and-receipt-webhooks).
        return WebhookReply(204, b"")
