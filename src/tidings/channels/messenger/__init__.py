"""Facebook Messenger Platform channel (kind `messenger`): one Facebook Page.

Webhook object `page`; fields to subscribe: messages, message_echoes, message_deliveries,
message_reads, message_reactions, message_edits, messaging_postbacks, messaging_referrals.
Protocol facts: docs/protocols/meta-platform.md and docs/channels/messenger.md#protocol-facts.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from tidings.channels import meta_common
from tidings.channels.base import (
    Capabilities,
    OutboundMessage,
    Permanent,
    RawEvent,
    Retriable,
    SendOutcome,
    WebhookReply,
    WebhookRequest,
)
from tidings.channels.interactive import Choices
from tidings.channels.media import MediaLocation, cdn_location
from tidings.channels.messenger.config import MessengerConfig
from tidings.channels.meta_common import attachments, messaging, profiles, send
from tidings.channels.meta_common import interactive as meta_interactive
from tidings.channels.meta_common.messaging_errors import outcome_for
from tidings.channels.profiles import Profile
from tidings.domain.enums import MessageKind
from tidings.domain.events import CanonicalEvent

__all__ = ["MessengerAdapter", "MessengerConfig"]

_MB = 1024 * 1024
# Send API attachments: 25 MB whatever the type (docs/channels/messenger.md#send-api).
_MEDIA_TYPES = {
    "image/": 25 * _MB,
    "audio/": 25 * _MB,
    "video/": 25 * _MB,
    "application/": 25 * _MB,
}


class MessengerAdapter:
    kind: ClassVar[str] = "messenger"
    label: ClassVar[str] = "Messenger"
    capabilities: ClassVar[Capabilities] = Capabilities(
        color="#2563eb",
        icon="messages-square",
        # Text is UTF-8 and under 2000 characters (docs/channels/messenger.md#send-api).
        text_max_length=2000,
        service_window_hours=24,
        human_agent_hours=7 * 24,
        receipts=("sent", "delivered", "read"),
        media_types=_MEDIA_TYPES,
        # The Send API allows 300 calls/s per Page for text (10/s for audio/video), but a Page
        # sending more than ~40 messages/s stops showing new messages
        # (docs/channels/messenger.md#rate-limits).
        rate_per_second=40.0,
        max_webhook_bytes=3 * _MB,
    )
    config_model: ClassVar[type[BaseModel]] = MessengerConfig
    # Sender actions (`mark_seen`, `typing_on`, `typing_off`), each sent alone
    # (docs/channels/messenger.md#send-api).
    signals: ClassVar[frozenset[str]] = frozenset({"mark_read", "typing_on", "typing_off"})
    secret_fields: ClassVar[frozenset[str]] = frozenset(
        {"page_access_token", "app_secret", "verify_token"}
    )

    def handshake(self, config: Any, request: WebhookRequest) -> WebhookReply:
        return meta_common.handshake(_config(config).verify_token, request, self.label)

    def verify(self, config: Any, request: WebhookRequest) -> None:
        meta_common.verify_signature([_config(config).app_secret], request, self.label)

    def split(self, config: Any, request: WebhookRequest) -> list[RawEvent]:
        return messaging.split(request.body, messaging.MESSENGER, _config(config).page_id)

    def parse(self, config: Any, payload: bytes) -> list[CanonicalEvent]:
        return messaging.parse(payload, messaging.MESSENGER)

    def ack(self, config: Any, request: WebhookRequest) -> WebhookReply:
        return WebhookReply(status=200, body=b"EVENT_RECEIVED")

    def interactive(self, choices: Choices) -> tuple[MessageKind, str, dict[str, Any]]:
        """Quick replies or a button template (`channels.interactive.InteractiveSender`)."""
        return meta_interactive.build(choices, self.label)

    async def send(
        self, config: Any, message: OutboundMessage, http: httpx.AsyncClient
    ) -> SendOutcome:
        c = _config(config)
        prepared = await attachments.with_uploads(
            message,
            upload_url=f"{c.api_base_url}/{c.api_version}/{c.page_id}/message_attachments",
            token=c.page_access_token,
            http=http,
            label=self.label,
        )
        if isinstance(prepared, Retriable | Permanent):
            return prepared
        message = prepared
        body = send.build_body(message)
        if isinstance(body, Permanent):
            return body
        url = f"{c.api_base_url}/{c.api_version}/{c.page_id}/messages"
        return await send.post(
            url, c.page_access_token, body, http, self.label, outcome_for, message.message_id
        )

    async def locate_media(
        self, config: Any, provider_media_id: str | None, url: str | None, http: httpx.AsyncClient
    ) -> MediaLocation:
        return cdn_location(url)

    def file_refusal(self, config: Any, *, kind: str | None, with_text: bool) -> str | None:
        return attachments.caption_refusal(self.label, with_text)

    async def fetch_profile(self, config: Any, address: str, http: httpx.AsyncClient) -> Profile:
        """User Profile API (`channels.profiles.ProfileSource`); chat-plugin visitors
        (`user_ref:`) have no PSID and no profile."""
        if not address.isdigit():
            return Profile(name=None)
        c = _config(config)
        doc = await profiles.fetch(
            f"{c.api_base_url}/{c.api_version}/{address}",
            c.page_access_token,
            "first_name,last_name,profile_pic",
            self.label,
            http,
        )
        return profiles.messenger_profile(doc)


def _config(config: Any) -> MessengerConfig:
    if isinstance(config, MessengerConfig):
        return config
    return MessengerConfig.model_validate(config)
