"""The settings one WeChat Official Account channel needs, named as the WeChat console names
them (Settings & Development → Basic configuration)."""

from __future__ import annotations

import base64
import binascii
import re

from pydantic import Field, field_validator

from tidings.channels.config_fields import ApiBaseUrl, ChannelConfig

# EncodingAESKey is 43 characters of the base64 alphabet; base64-decoding it with one "="
# appended gives the 32-byte AES-256 key (docs/channels/wechat.md#safe-mode-crypto).
_AES_KEY = re.compile(r"^[A-Za-z0-9+/]{43}$")


class WeChatConfig(ChannelConfig):
    """One Official Account. Without `encoding_aes_key` the account runs in plaintext mode;
    with it, pushes must be encrypted (compatibility or safe mode)."""

    # AppID (`wx…`): the trailing id inside every safe-mode plaintext, and the token request.
    app_id: str = Field(min_length=1, max_length=64)
    app_secret: str = Field(min_length=1)
    # The "Token" typed into the server configuration; signs every push
    # (docs/channels/wechat.md#server-url-check-and-signatures).
    token: str = Field(min_length=1, max_length=128)
    encoding_aes_key: str | None = None
    # The sandbox points this at the simulator; production leaves the default.
    api_base_url: ApiBaseUrl = "https://api.weixin.qq.com"

    @field_validator("encoding_aes_key")
    @classmethod
    def _check_key(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not _AES_KEY.match(value):
            raise ValueError("encoding_aes_key must be the 43-character EncodingAESKey")
        try:
            base64.b64decode(value + "=", validate=True)
        except binascii.Error:
            raise ValueError("encoding_aes_key is not valid base64") from None
        return value
