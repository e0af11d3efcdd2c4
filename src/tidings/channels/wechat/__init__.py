"""WeChat Official Account (公众号) channel.

Inbound: WeChat pushes XML to `/webhooks/wechat/{channel_id}` in plaintext, compatibility or
safe (AES) mode; we answer `success` once the push is stored, well inside WeChat's 5-second
deadline, and reply later through the Customer Service API. Protocol facts:
docs/channels/wechat.md#protocol-facts. Public surface: `WeChatAdapter`, `WeChatConfig`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from tidings.channels.base import (
    Adapter,
    Capabilities,
    RawEvent,
    WebhookReply,
    WebhookRequest,
)
from tidings.channels.media import MediaLocation
from tidings.channels.profiles import Profile
from tidings.channels.wechat import client, media, profiles, webhook
from tidings.channels.wechat.config import WeChatConfig

__all__ = ["WeChatAdapter", "WeChatConfig"]

_MB = 1024 * 1024


class WeChatAdapter(Adapter[WeChatConfig]):
    kind: ClassVar[str] = "wechat"
    label: ClassVar[str] = "WeChat"
    capabilities: ClassVar[Capabilities] = Capabilities(
        color="#15803d",
        icon="message-circle-more",
        # WeChat answers 45002 past its limit, commonly quoted as 2048 bytes
        # (docs/channels/wechat.md#customer-service-messages).
        text_max_length=2048,
        # Customer-service messages only within 48 h of the user's last message
        # (docs/channels/wechat.md#customer-service-messages); the per-window count (5 per message,
        # 3 per menu/follow event) is enforced by WeChat and surfaces as 45047.
        service_window_hours=48,
        receipts=("sent",),
        # Temporary media limits (docs/channels/wechat.md#temporary-media), for downloads and for
        # uploads alike. The Customer Service API has no file message, so documents cannot be sent.
        media_types={
            "image/jpeg": 10 * _MB,
            "image/png": 10 * _MB,
            "image/gif": 10 * _MB,
            "audio/amr": 2 * _MB,
            "audio/mpeg": 2 * _MB,
            "video/mp4": 10 * _MB,
        },
        rate_per_second=20.0,
        # A push is one small XML message; compatibility mode sends it ~3 times over (plain +
        # Encrypt). 64 KB is far above any real push and refuses bulk junk early.
        max_webhook_bytes=64 * 1024,
    )
    config_model: ClassVar[type[BaseModel]] = WeChatConfig
    secret_fields: ClassVar[frozenset[str]] = frozenset({"app_secret", "token", "encoding_aes_key"})
    parse_payload = staticmethod(webhook.parse)
    send_with = staticmethod(client.send_message)

    def handshake(self, config: Any, request: WebhookRequest) -> WebhookReply:
        return webhook.handshake(self.cfg(config), request)

    def verify(self, config: Any, request: WebhookRequest) -> None:
        webhook.plaintext(self.cfg(config), request)

    def split(self, config: Any, request: WebhookRequest) -> list[RawEvent]:
        return webhook.split(self.cfg(config), request)

    def ack(self, config: Any, request: WebhookRequest) -> WebhookReply:
        # "success" tells WeChat the push was taken and no passive reply follows
        # (docs/channels/wechat.md#push-deadline-and-retries).
        return WebhookReply(200, b"success", "text/plain")

    async def locate_media(
        self, config: Any, provider_media_id: str | None, url: str | None, http: httpx.AsyncClient
    ) -> MediaLocation:
        """MediaId -> `GET /cgi-bin/media/get` with the access token (`media.MediaLocator`)."""
        return await media.locate(self.cfg(config), provider_media_id, http)

    def file_refusal(self, config: Any, *, kind: str | None, with_text: bool) -> str | None:
        # Stored files are uploaded as temporary media and sent by media_id. Image and voice
        # messages are only `{media_id}` (docs/channels/wechat.md#customer-service-messages): the
        # reply's text would be lost.
        if with_text and kind in (None, "image", "audio"):
            return (
                "WeChat sends images and voice messages without a caption: send the text as "
                "its own message."
            )
        return None

    async def fetch_profile(self, config: Any, address: str, http: httpx.AsyncClient) -> Profile:
        """`cgi-bin/user/info` (`channels.profiles.ProfileSource`)."""
        return await profiles.fetch(self.cfg(config), address, http)
