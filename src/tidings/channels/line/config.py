"""The settings one LINE Official Account (a Messaging API channel) needs."""

from __future__ import annotations

from pydantic import Field, field_validator

from tidings.channels.config_fields import ChannelConfig


class LineConfig(ChannelConfig):
    """One Messaging API channel, in LINE's own words (docs/channels/line.md)."""

    channel_secret: str = Field(
        min_length=1, description="Basic settings → Channel secret: the webhook signature key"
    )
    channel_access_token: str = Field(
        min_length=1, description="Messaging API → Channel access token (long-lived)"
    )
    api_base_url: str = "https://api.line.me"
    # Binary content (customers' images, videos, audio, files) lives on its own host.
    data_api_base_url: str = "https://api-data.line.me"

    @field_validator("api_base_url", "data_api_base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")
