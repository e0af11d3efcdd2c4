"""The settings one Vonage SMS channel needs, named as the Vonage dashboard names them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tidings.channels.config_fields import ApiBaseUrl, ChannelConfig

SignatureMethod = Literal["md5hash", "md5", "sha1", "sha256", "sha512"]


class VonageConfig(ChannelConfig):
    """One Vonage (Nexmo) SMS API account and the number (or sender id) it sends from."""

    api_key: str = Field(min_length=1)
    api_secret: str = Field(min_length=1)
    # Signed webhooks must be enabled on the Vonage account
    # (docs/channels/vonage.md#signed-webhooks: `sig` "if signing enabled"); Tidings refuses
    # unsigned inbound calls, so the secret is required.
    signature_secret: str = Field(min_length=1)
    # Dashboard default is "MD5 hash"; HMAC MD5/SHA1/SHA256/SHA512 are the alternatives.
    signature_method: SignatureMethod = "md5hash"
    # The virtual number in E.164 (or digits), or an alphanumeric sender id where allowed.
    from_number: str = Field(min_length=1, max_length=20)
    api_base_url: ApiBaseUrl = "https://rest.nexmo.com"
    # Vonage re-pushes unacknowledged webhooks for 24 h (docs/channels/vonage.md#signed-webhooks),
    # so a signed timestamp up to 25 h old is accepted; older ones are replays. Dedupe by messageId
    # covers repeats inside.
    signature_max_age_seconds: int = Field(default=90_000, ge=60)

    @field_validator("from_number")
    @classmethod
    def _sender(cls, value: str) -> str:
        digits = value.removeprefix("+")
        if digits.isdigit():
            return value
        # Alphanumeric sender ids: at most 11 characters, letters/digits/space (GSM 03.40).
        if len(value) > 11 or not all(ch.isascii() and (ch.isalnum() or ch == " ") for ch in value):
            raise ValueError("from_number must be a phone number or an alphanumeric id (<= 11)")
        return value
