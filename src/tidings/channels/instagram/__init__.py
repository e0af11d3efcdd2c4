"""Instagram messaging channel (kind `instagram`), both API flavours (see `config`).

Webhook object `instagram`; fields: messages (echoes included), message_reactions,
messaging_seen, messaging_postbacks, messaging_referral. Protocol facts:
docs/providers/graph-api.md and docs/channels/instagram.md#protocol-facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from tidings.channels.base import Capabilities
from tidings.channels.instagram.config import InstagramConfig
from tidings.channels.meta_common import attachments, messaging, profiles
from tidings.channels.meta_common.adapter import Account, MessagingAdapter
from tidings.channels.meta_common.messaging_errors import instagram_outcome

__all__ = ["InstagramAdapter", "InstagramConfig"]

_MB = 1024 * 1024
# Outbound formats (docs/channels/instagram.md#media-formats): images png/jpeg ≤8 MB; audio, video
# and pdf ≤25 MB.
_MEDIA_TYPES = {
    "image/png": 8 * _MB,
    "image/jpeg": 8 * _MB,
    "audio/aac": 25 * _MB,
    "audio/mp4": 25 * _MB,
    "audio/x-m4a": 25 * _MB,
    "audio/wav": 25 * _MB,
    "video/mp4": 25 * _MB,
    "video/ogg": 25 * _MB,
    "video/quicktime": 25 * _MB,
    "video/webm": 25 * _MB,
    "video/x-msvideo": 25 * _MB,
    "application/pdf": 25 * _MB,
}


class InstagramAdapter(MessagingAdapter[InstagramConfig]):
    kind: ClassVar[str] = "instagram"
    label: ClassVar[str] = "Instagram"
    capabilities: ClassVar[Capabilities] = Capabilities(
        color="#db2777",
        icon="camera",
        # UTF-8 text of at most 1000 bytes (docs/channels/instagram.md#sending).
        text_max_length=1000,
        text_max_bytes=1000,
        service_window_hours=24,
        human_agent_hours=7 * 24,
        # No delivery receipts on Instagram, only "seen"
        # (docs/channels/instagram.md#inbound-events).
        receipts=("sent", "read"),
        media_types=_MEDIA_TYPES,
        # Instagram Login: 100 Send API calls/s per account
        # (docs/channels/instagram.md#rate-limits).
        rate_per_second=100.0,
        max_webhook_bytes=3 * _MB,
    )
    config_model: ClassVar[type[BaseModel]] = InstagramConfig
    # Reactions go by name: `"payload": {"message_id": ..., "reaction": "love"}`
    # (docs/channels/instagram.md#sending); the names are those Meta reports for inbound reactions
    # (docs/channels/messenger.md#inbound-events).
    reaction_names: ClassVar[Mapping[str, str]] = {
        "\u2764\ufe0f": "love",
        "\u2764": "love",
        "\U0001f606": "smile",
        "\U0001f62e": "wow",
        "\U0001f622": "sad",
        "\U0001f620": "angry",
        "\U0001f44d": "like",
    }
    secret_fields: ClassVar[frozenset[str]] = frozenset(
        {"access_token", "app_secret", "instagram_app_secret", "verify_token"}
    )

    product: ClassVar[messaging.Product] = messaging.INSTAGRAM
    outcome_for = staticmethod(instagram_outcome)
    profile_fields: ClassVar[str] = "name,username,profile_pic"
    profile_of = staticmethod(profiles.instagram_profile)

    def account(self, config: Any) -> Account:
        c = self.cfg(config)
        # The Attachment Upload API exists for the Facebook Login flavour only.
        uploads = c.flavour == "facebook_login" and c.page_id
        return Account(
            graph=f"{c.base_url}/{c.api_version}",
            token=c.access_token,
            verify_token=c.verify_token,
            secrets=[c.app_secret] + ([c.instagram_app_secret] if c.instagram_app_secret else []),
            account_id=c.instagram_account_id,
            send_node=c.send_node,
            upload_node=c.page_id if uploads else None,
            upload_platform="instagram",
        )

    def file_refusal(self, config: Any, *, kind: str | None, with_text: bool) -> str | None:
        c = self.cfg(config)
        if c.flavour != "facebook_login" or not c.page_id:
            # The Attachment Upload API exists for the Facebook Login flavour only; otherwise
            # "media must be reachable URLs (or attachment ids)"
            # (docs/channels/instagram.md#sending, docs/channels/instagram.md#media-formats).
            return (
                "Instagram accounts connected with Instagram Login take files only by public "
                "URL; connect the account through its Facebook Page to send uploaded files."
            )
        return attachments.caption_refusal(self.label, with_text)
