"""The settings one Instagram channel (one Instagram professional account) needs.

Two API flavours with the same JSON (docs/channels/instagram.md#api-flavours): `instagram_login`
(Instagram API with Instagram Login: graph.instagram.com, an Instagram user token, no Facebook
Page) and `facebook_login` (Messenger API for Instagram: graph.facebook.com, the linked Page's id
and Page token)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tidings.channels.config_fields import ApiBaseUrl, ChannelConfig, GraphVersion

_HOSTS = {
    "instagram_login": "https://graph.instagram.com",
    "facebook_login": "https://graph.facebook.com",
}


class InstagramConfig(ChannelConfig):
    flavour: Literal["instagram_login", "facebook_login"] = "instagram_login"
    # The professional account's id: webhooks carry it as entry[].id. For Instagram Login this
    # is the `user_id` (17841...), not the app-scoped id /me returns
    # (docs/channels/instagram.md#inbound-events).
    instagram_account_id: str = Field(min_length=1, pattern=r"^\d+$")
    # facebook_login only: the linked Page, which sends go to.
    page_id: str | None = Field(default=None, pattern=r"^\d+$")
    # Instagram user token (instagram_login) or Page access token (facebook_login).
    access_token: str = Field(min_length=1)
    # Meta app secret: signs X-Hub-Signature-256.
    app_secret: str = Field(min_length=1)
    # Instagram Login apps also show an "Instagram app secret"; Meta does not say which one
    # signs (docs/providers/graph-api.md#webhook-signature), so a webhook signed with either is
    # accepted.
    instagram_app_secret: str | None = None
    verify_token: str = Field(min_length=1)
    # Human Agent feature approved: replies up to 7 days with the HUMAN_AGENT tag
    # (docs/channels/instagram.md#window-and-tags).
    human_agent: bool = False
    # None = Meta's host for the flavour; the sandbox points it at the simulator.
    api_base_url: ApiBaseUrl | None = None
    api_version: GraphVersion = "v25.0"

    @model_validator(mode="after")
    def _page_for_facebook_login(self) -> InstagramConfig:
        if self.flavour == "facebook_login" and not self.page_id:
            raise ValueError("page_id is required with flavour facebook_login")
        return self

    @property
    def base_url(self) -> str:
        return self.api_base_url or _HOSTS[self.flavour]

    @property
    def send_node(self) -> str:
        """The id in `/{id}/messages`: the Page (facebook_login) or the IG account."""
        if self.flavour == "facebook_login" and self.page_id:
            return self.page_id
        return self.instagram_account_id

    @property
    def signing_secret(self) -> str:
        """The secret the sandbox simulator signs with (the Instagram one when given)."""
        return self.instagram_app_secret or self.app_secret
