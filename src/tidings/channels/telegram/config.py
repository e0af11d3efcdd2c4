"""The settings one Telegram bot needs."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from tidings.channels.config_fields import ApiBaseUrl, ChannelConfig

# Bot API: `secret_token` is 1-256 characters of A-Z a-z 0-9 _ -
# (docs/channels/telegram.md#webhook-delivery).
SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# "<bot id>:<secret>" as BotFather hands it out; only the shape is checked here.
BOT_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]+$")


class TelegramConfig(ChannelConfig):
    """One bot connected through the Bot API webhook."""

    bot_token: str = Field(min_length=3, description="The token from @BotFather")
    secret_token: str = Field(
        description="Passed to setWebhook; Telegram echoes it in X-Telegram-Bot-Api-Secret-Token"
    )
    api_base_url: ApiBaseUrl = "https://api.telegram.org"

    @field_validator("bot_token")
    @classmethod
    def _check_token(cls, value: str) -> str:
        if not BOT_TOKEN.match(value):
            raise ValueError("bot_token looks like 123456789:AAH... (as @BotFather gives it)")
        return value

    @field_validator("secret_token")
    @classmethod
    def _check_secret(cls, value: str) -> str:
        if not SECRET_TOKEN.match(value):
            raise ValueError("secret_token must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value
