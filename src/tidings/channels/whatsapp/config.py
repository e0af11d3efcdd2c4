"""The settings one WhatsApp channel needs, named as Meta names them in the App Dashboard."""

from __future__ import annotations

from pydantic import Field

from tidings.channels.config_fields import ApiBaseUrl, ChannelConfig, GraphVersion

# Meta accepts any `vNN.N` version prefix (docs/providers/graph-api.md#graph-versions); v25.0 is
# the one in current examples.


class WhatsAppConfig(ChannelConfig):
    """One WhatsApp Business phone number connected through the Cloud API."""

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
    api_base_url: ApiBaseUrl = "https://graph.facebook.com"
    api_version: GraphVersion = "v25.0"
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
