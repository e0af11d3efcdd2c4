"""The settings one Viber bot needs (docs/channels/viber.md, "Connect a real bot")."""

from __future__ import annotations

from pydantic import Field, field_validator

from tidings.channels.config_fields import ApiBaseUrl, ChannelConfig

# `sender.name` is required on every send and at most 28 characters (docs/channels/viber.md).
SENDER_NAME_MAX = 28


class ViberConfig(ChannelConfig):
    """One Viber bot, connected through the REST Bot API."""

    auth_token: str = Field(
        min_length=8,
        description="The bot's token (Viber Admin Panel, Edit info); it also signs callbacks",
    )
    api_base_url: ApiBaseUrl = "https://chatapi.viber.com"
    # Shown as the author of every message Tidings sends; Viber requires a name.
    sender_name: str | None = Field(default=None, max_length=SENDER_NAME_MAX)
    sender_avatar: str | None = None

    @field_validator("auth_token")
    @classmethod
    def _check_token(cls, value: str) -> str:
        if not value.isascii() or not value.isprintable() or " " in value:
            raise ValueError("auth_token is the printable token from the Viber Admin Panel")
        return value

    @field_validator("sender_avatar")
    @classmethod
    def _check_avatar(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("sender_avatar must be an http(s) URL of an image")
        return value or None
