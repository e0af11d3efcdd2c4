"""Google RCS Business Messaging channel (kind `rbm`), the live successor of Google Business
Messages.

Public surface: `RbmAdapter` (registered in `channels/registry.py`; also an
`ReadReceiptSender` and `TypingSender`), `RbmConfig`, and in `client`: `capabilities`
(the capability check every send starts with), `send_event` (READ / IS_TYPING). Facts come
from docs/channels/rbm.md#protocol-facts. The customer's identity is their E.164 MSISDN, so it
meets their SMS and WhatsApp identities on one contact.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from tidings.channels import google_common as google
from tidings.channels.base import (
    Capabilities,
    RawEvent,
    SendOutcome,
    WebhookRequest,
)
from tidings.channels.rbm import client, webhook
from tidings.channels.rbm.config import RbmConfig

__all__ = ["RbmAdapter", "RbmConfig"]

_MB = 1024 * 1024


class RbmAdapter(google.AgentAdapter[RbmConfig]):
    kind: ClassVar[str] = "rbm"
    label: ClassVar[str] = "RCS Business Messaging"
    capabilities: ClassVar[Capabilities] = Capabilities(
        color="#0f766e",
        icon="message-square-text",
        # RBM text messages are limited to 3072 characters (Google's AgentContentMessage
        # reference; docs/channels/rbm.md#sending-and-agent-events).
        text_max_length=3072,
        service_window_hours=None,
        receipts=("sent", "delivered", "read"),
        media_types={"image/": 100 * _MB, "video/": 100 * _MB, "audio/": 100 * _MB},
        rate_per_second=50.0,
        max_webhook_bytes=1_000_000,
    )
    config_model: ClassVar[type[BaseModel]] = RbmConfig
    handshake_refusal: ClassVar[str] = "RBM verifies webhooks with a POST of clientToken and secret"
    parse_payload = staticmethod(webhook.parse)
    send_with = staticmethod(client.send_message)

    def verify(self, config: Any, request: WebhookRequest) -> None:
        webhook.verify(self.cfg(config).webhook_client_token, request)

    def split(self, config: Any, request: WebhookRequest) -> list[RawEvent]:
        return webhook.split(self.cfg(config).webhook_client_token, request)

    # ReadReceiptSender and TypingSender (channels/optional.py): READ and IS_TYPING.
    async def send_read(
        self, config: Any, to: str, provider_message_id: str, http: httpx.AsyncClient
    ) -> SendOutcome:
        return await client.send_event(
            self.cfg(config), to, "READ", http, message_id=provider_message_id
        )

    async def send_typing(self, config: Any, to: str, http: httpx.AsyncClient) -> SendOutcome:
        return await client.send_event(self.cfg(config), to, "IS_TYPING", http)
