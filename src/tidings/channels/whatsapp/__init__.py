"""WhatsApp Business Cloud API channel.

The package's public surface is `WhatsAppAdapter` (registered in `channels/registry.py`) and
`WhatsAppConfig`. Protocol facts come from docs/providers/graph-api.md and
docs/channels/whatsapp.md#protocol-facts.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from tidings.channels.base import Adapter, Capabilities, WebhookReply, WebhookRequest
from tidings.channels.interactive import Choices
from tidings.channels.media import OFFICE_TYPES, MediaLocation
from tidings.channels.message_templates import ProviderTemplate
from tidings.channels.meta_common import handshake, verify_signature
from tidings.channels.whatsapp import client, interactive, media, templates, webhook
from tidings.channels.whatsapp.config import WhatsAppConfig
from tidings.domain.enums import MessageKind

__all__ = ["WhatsAppAdapter", "WhatsAppConfig"]

_MB = 1024 * 1024
_DOCUMENT_TYPES = ("text/plain", "application/pdf", *OFFICE_TYPES)

# Send-side media limits (docs/channels/whatsapp.md#media-limits-and-downloads). image/webp is the
# sticker type: 100 KB static, 500 KB animated; the larger bound is listed and the smaller left to
# Meta to enforce.
_MEDIA_TYPES: dict[str, int] = {
    "image/jpeg": 5 * _MB,
    "image/png": 5 * _MB,
    "image/webp": 500 * 1024,
    "audio/aac": 16 * _MB,
    "audio/amr": 16 * _MB,
    "audio/mpeg": 16 * _MB,
    "audio/mp4": 16 * _MB,
    "audio/ogg": 16 * _MB,  # Opus only, mono
    "video/mp4": 16 * _MB,
    "video/3gpp": 16 * _MB,
    **dict.fromkeys(_DOCUMENT_TYPES, 100 * _MB),
}


class WhatsAppAdapter(Adapter[WhatsAppConfig]):
    """WhatsApp Cloud API. Stateless: everything per channel is in `WhatsAppConfig`."""

    kind: ClassVar[str] = "whatsapp"
    label: ClassVar[str] = "WhatsApp"
    capabilities: ClassVar[Capabilities] = Capabilities(
        color="#16a34a",
        icon="message-circle",
        phone_addressed=True,
        campaign_text=False,
        text_max_length=4096,
        service_window_hours=24,
        supports_templates=True,
        receipts=("sent", "delivered", "read"),
        media_types=_MEDIA_TYPES,
        # 80 msg/s per business number by default
        # (docs/channels/whatsapp.md#throughput-and-pair-limits); higher tiers are set per channel.
        rate_per_second=80.0,
        # Meta's documented maximum webhook payload
        # (docs/providers/graph-api.md#batching-retries-and-order).
        max_webhook_bytes=3 * _MB,
        # Pair limit: one message per 6 s to the same user, bursts of up to 45
        # (docs/channels/whatsapp.md#throughput-and-pair-limits); exceeding it is error 131056.
        recipient_rate_per_second=1 / 6,
        recipient_burst=45,
    )
    split_body = staticmethod(webhook.split)
    parse_payload = staticmethod(webhook.parse)
    send_with = staticmethod(client.send_message)
    config_model: ClassVar[type[BaseModel]] = WhatsAppConfig
    # Sender signals: `status: read` on the customer's message, optionally with a typing
    # indicator (shown until the reply or for 25 s; there is no "typing off",
    # docs/channels/whatsapp.md#sending).
    signals: ClassVar[frozenset[str]] = frozenset({"mark_read", "typing_on"})
    secret_fields: ClassVar[frozenset[str]] = frozenset(
        {"access_token", "app_secret", "verify_token"}
    )

    def handshake(self, config: Any, request: WebhookRequest) -> WebhookReply:
        return handshake(self.cfg(config).verify_token, request, self.label)

    def verify(self, config: Any, request: WebhookRequest) -> None:
        verify_signature([self.cfg(config).app_secret], request, self.label)

    def interactive(self, choices: Choices) -> tuple[MessageKind, str, dict[str, Any]]:
        """Reply buttons or a list (`channels.interactive.InteractiveSender`)."""
        return interactive.build(choices)

    async def fetch_templates(self, config: Any, http: httpx.AsyncClient) -> list[ProviderTemplate]:
        """The WABA's templates, every page (`channels.message_templates.TemplateSource`)."""
        return await templates.fetch_templates(self.cfg(config), http)

    async def locate_media(
        self, config: Any, provider_media_id: str | None, url: str | None, http: httpx.AsyncClient
    ) -> MediaLocation:
        """Media id -> `GET /{media-id}` -> URL fetched with the bearer token
        (docs/channels/whatsapp.md#media-limits-and-downloads)."""
        return await media.locate(self.cfg(config), provider_media_id, http)

    def file_refusal(self, config: Any, *, kind: str | None, with_text: bool) -> str | None:
        # Stored files are uploaded (`POST /{phone-number-id}/media`) and sent by id; the
        # reply's text travels as the caption, but "`audio` has no caption"
        # (docs/channels/whatsapp.md#sending).
        if with_text and kind == "audio":
            return "WhatsApp sends audio without a caption: send the text as its own message."
        return None
