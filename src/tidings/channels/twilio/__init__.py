"""Twilio Programmable Messaging (SMS/MMS) channel.

The package's public surface is `TwilioAdapter` (registered in `channels/registry.py`) and
`TwilioConfig`. Protocol facts:
docs/channels/twilio.md#protocol-facts.
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
from tidings.channels.twilio import client, webhook
from tidings.channels.twilio.config import TwilioConfig
from tidings.storage.types import utcnow

__all__ = ["TwilioAdapter", "TwilioConfig"]

_MB = 1024 * 1024

# Twilio answers an inbound webhook with TwiML; an empty <Response/> sends no auto-reply.
TWIML_EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'


class TwilioAdapter(Adapter[TwilioConfig]):
    kind: ClassVar[str] = "twilio"
    label: ClassVar[str] = "SMS (Twilio)"
    capabilities: ClassVar[Capabilities] = Capabilities(
        color="#ea580c",
        icon="smartphone",
        # Body <= 1600 characters (docs/channels/twilio.md#send-api; 21617 above).
        text_max_length=1600,
        receipts=("sent", "delivered"),
        # MMS: 5 MB per message across media (Twilio's documented MMS cap).
        media_types={"image/": 5 * _MB, "video/": 5 * _MB, "audio/": 5 * _MB},
        # A US long code sends 1 segment per second; Twilio queues the excess
        # (docs/channels/twilio.md#throughput), so a modest local rate keeps the queue short without
        # starving bursts.
        rate_per_second=10.0,
        max_webhook_bytes=256 * 1024,
        sms=True,
    )
    config_model: ClassVar[type[BaseModel]] = TwilioConfig
    secret_fields: ClassVar[frozenset[str]] = frozenset({"auth_token"})
    # Twilio can be set to GET webhooks; Tidings needs POST so the event is stored first.
    handshake_refusal: ClassVar[str] = "configure the Twilio webhook with HTTP POST, not GET"
    parse_payload = staticmethod(webhook.parse)
    send_with = staticmethod(client.send_message)

    def verify(self, config: Any, request: WebhookRequest) -> None:
        webhook.verify(self.cfg(config).auth_token, request)

    def split(self, config: Any, request: WebhookRequest) -> list[RawEvent]:
        return webhook.split(request, utcnow())

    def ack(self, config: Any, request: WebhookRequest) -> WebhookReply:
        return WebhookReply(200, TWIML_EMPTY, "text/xml")
