"""The settings one Messenger channel (one Facebook Page) needs, named as Meta names them."""

from __future__ import annotations

from pydantic import Field

from tidings.channels.config_fields import ApiBaseUrl, ChannelConfig, GraphVersion


class MessengerConfig(ChannelConfig):
    """One Facebook Page connected through the Messenger Platform."""

    # Webhooks carry it as entry[].id; sends go to /{page_id}/messages.
    page_id: str = Field(min_length=1, pattern=r"^\d+$")
    # Page access token, sent as `Authorization: Bearer`.
    page_access_token: str = Field(min_length=1)
    # Key of the HMAC in `X-Hub-Signature-256` on every webhook POST.
    app_secret: str = Field(min_length=1)
    # The string typed into the App Dashboard, echoed in the GET handshake.
    verify_token: str = Field(min_length=1)
    # The app has Meta's Human Agent feature (App Review): a person's reply may carry the
    # HUMAN_AGENT tag up to 7 days after the customer's last message
    # (docs/channels/messenger.md#messaging-window-and-tags).
    human_agent: bool = False
    # The sandbox points this at the simulator; production leaves the default.
    api_base_url: ApiBaseUrl = "https://graph.facebook.com"
    api_version: GraphVersion = "v25.0"
