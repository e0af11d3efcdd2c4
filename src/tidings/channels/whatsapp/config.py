"""The settings one WhatsApp channel needs, named as Meta names them in the App Dashboard."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Meta accepts any `vNN.N` version prefix (docs/protocols/meta-platform.md#graph-versions); v25.0 is
# the one in current examples.
_VERSION = re.compile(r"^v\d+\.\d+$")


class WhatsAppConfig(BaseModel):
    """One WhatsApp Business phone number connected through the Cloud API."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    # The id we POST to (`/{phone_number_id}/messages`); webhooks carry it in
    # `metadata.phone_number_id`. Not the phone number itself.
    phone_number_id: str = Field(min_length=1)
    # System-user or business token, sent as `Authorization: Bearer`.
    access_token: str = Field(min_length=1)
    # Key of the HMAC in `X-Hub-Signature-256` on every webhook POST.
    app_secret: str = Field(min_length=1)
    # The string typed into the App Dashboard, echoed in the GET handshake.
    verify_token: str = Field(min_length=1)
    # The sandbox points this at the simulator; production leaves the default.
    api_base_url: str = "https://graph.facebook.com"
    api_version: str = "v25.0"
    waba_id: str | None = None
    # Digits only, as in webhook `metadata.display_phone_number`.
    display_phone_number: str | None = None
    # The number's throughput tier: 80 msg/s by default, 1,000 msg/s after Meta's automatic
    # upgrade, 20 msg/s for coexistence numbers; more gets 130429
    # (docs/channels/whatsapp.md#throughput-and-pair-limits). The delivery worker's
    # one-second window for this channel holds this many sends (`ratelimit.channel_rate`).
    messages_per_second: int = Field(
        80,
        ge=1,
        le=1000,
        title="Messages per second",
        description="Throughput tier of this number: 80 by default, 1000 once Meta upgrades it.",
    )

    @field_validator("api_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("api_base_url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("api_version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        if not _VERSION.match(value):
            raise ValueError("api_version looks like v25.0")
        return value
