"""Telegram Bot API channel (kind `telegram`).

Public surface: `TelegramAdapter` (registered in `channels/registry.py`), `TelegramConfig`, and
the webhook helpers in `client` (`set_webhook`, `delete_webhook`, `get_webhook_info`). Facts come
from docs/channels/telegram.md#protocol-facts. The customer's identity is the chat id.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from tidings.channels.base import (
    Adapter,
    Capabilities,
    Permanent,
    Retriable,
    SendOutcome,
    Sent,
    WebhookRequest,
)
from tidings.channels.media import MediaLocation
from tidings.channels.telegram import client, media, webhook
from tidings.channels.telegram.config import TelegramConfig

__all__ = ["TelegramAdapter", "TelegramConfig"]


class TelegramAdapter(Adapter[TelegramConfig]):
    kind: ClassVar[str] = "telegram"
    label: ClassVar[str] = "Telegram"
    capabilities: ClassVar[Capabilities] = Capabilities(
        color="#0284c7",
        icon="send",
        text_max_length=4096,
        # The Bot API has no delivery or read receipts.
        receipts=("sent",),
        # Multipart upload limits (10 MB photos, 50 MB other files); inbound downloads stop at
        # 20 MB (`media.locate`). By URL Telegram fetches up to 5 MB photos, 20 MB other files.
        media_types=media.MEDIA_TYPES,
        # ~30 messages/s per bot for broadcasts (Bot FAQ, docs/channels/telegram.md#limits); per
        # chat ~1/s is enforced by Telegram with 429 + retry_after, which the delivery worker
        # honours.
        rate_per_second=30.0,
    )
    split_body = staticmethod(webhook.split)
    parse_payload = staticmethod(webhook.parse)
    send_with = staticmethod(client.send_message)
    config_model: ClassVar[type[BaseModel]] = TelegramConfig
    handshake_refusal = "Telegram has no GET handshake; register the URL with setWebhook"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"bot_token", "secret_token"})

    def verify(self, config: Any, request: WebhookRequest) -> None:
        webhook.verify(self.cfg(config).secret_token, request)

    # TypingSender (channels/optional.py). Bots get no read receipts, so no send_read.
    async def send_typing(self, config: Any, to: str, http: httpx.AsyncClient) -> SendOutcome:
        """`sendChatAction` "typing": shown for about 5 seconds or until our next message."""
        try:
            await client.send_chat_action(self.cfg(config), to, "typing", http)
        except client.TelegramError as exc:
            return Permanent(exc.message, exc.code)
        except httpx.HTTPError as exc:
            return Retriable(f"Could not reach Telegram ({type(exc).__name__}).")
        return Sent(f"typing:{to}")

    async def locate_media(
        self, config: Any, provider_media_id: str | None, url: str | None, http: httpx.AsyncClient
    ) -> MediaLocation:
        """file_id -> getFile -> `/file/bot<token>/<file_path>` (`media.MediaLocator`)."""
        return await media.locate(self.cfg(config), provider_media_id, http)

    def file_refusal(self, config: Any, *, kind: str | None, with_text: bool) -> str | None:
        # Every upload method takes a caption; a text over 1024 characters goes first as its
        # own message (`client.send_message`).
        return None
