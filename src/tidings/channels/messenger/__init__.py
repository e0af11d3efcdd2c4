"""Facebook Messenger Platform channel (kind `messenger`): one Facebook Page.

Webhook object `page`; fields to subscribe: messages, message_echoes, message_deliveries,
message_reads, message_reactions, message_edits, messaging_postbacks, messaging_referrals.
Protocol facts: docs/providers/graph-api.md and docs/channels/messenger.md#protocol-facts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from tidings.channels.base import Capabilities
from tidings.channels.messenger.config import MessengerConfig
from tidings.channels.meta_common import attachments, messaging, profiles
from tidings.channels.meta_common.adapter import Account, MessagingAdapter
from tidings.channels.meta_common.messaging_errors import outcome_for

__all__ = ["MessengerAdapter", "MessengerConfig"]

_MB = 1024 * 1024
# Send API attachments: 25 MB whatever the type (docs/channels/messenger.md#send-api).
_MEDIA_TYPES = {
    "image/": 25 * _MB,
    "audio/": 25 * _MB,
    "video/": 25 * _MB,
    "application/": 25 * _MB,
}


class MessengerAdapter(MessagingAdapter[MessengerConfig]):
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
    secret_fields: ClassVar[frozenset[str]] = frozenset(
        {"page_access_token", "app_secret", "verify_token"}
    )

    product: ClassVar[messaging.Product] = messaging.MESSENGER
    outcome_for = staticmethod(outcome_for)
    profile_fields: ClassVar[str] = "first_name,last_name,profile_pic"
    profile_of = staticmethod(profiles.messenger_profile)

    def account(self, config: Any) -> Account:
        c = self.cfg(config)
        return Account(
            graph=f"{c.api_base_url}/{c.api_version}",
            token=c.page_access_token,
            verify_token=c.verify_token,
            secrets=[c.app_secret],
            account_id=c.page_id,
            send_node=c.page_id,
            upload_node=c.page_id,
        )

    def file_refusal(self, config: Any, *, kind: str | None, with_text: bool) -> str | None:
        return attachments.caption_refusal(self.label, with_text)
