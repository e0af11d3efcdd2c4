"""The adapter methods Messenger and Instagram share: both speak the Messenger Platform (the
`messaging[]` webhook, the Send API, the Attachment Upload API, User Profile lookups), so they
differ only in their settings, which each adapter reads into an `Account`, and in a few
provider rules (error codes, profile fields, when files may go)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import httpx

from tidings.channels.base import (
    Adapter,
    OutboundMessage,
    Permanent,
    RawEvent,
    Retriable,
    SendOutcome,
    WebhookReply,
    WebhookRequest,
)
from tidings.channels.config_fields import ConfigT
from tidings.channels.interactive import Choices
from tidings.channels.media import MediaLocation, cdn_location
from tidings.channels.meta_common import (
    GraphError,
    attachments,
    handshake,
    messaging,
    profiles,
    send,
    verify_signature,
)
from tidings.channels.meta_common import interactive as meta_interactive
from tidings.channels.profiles import Profile
from tidings.domain.enums import MessageKind
from tidings.domain.events import CanonicalEvent


@dataclass(frozen=True, slots=True)
class Account:
    """One channel's settings as the shared methods need them."""

    graph: str  # "{host}/{version}": every call's prefix
    token: str
    verify_token: str
    secrets: list[str]  # the keys a webhook may be signed with
    account_id: str  # webhooks carry it as entry[].id
    send_node: str  # the id in /{id}/messages
    upload_node: str | None  # the id in /{id}/message_attachments; None: no uploads
    upload_platform: str | None = None


class MessagingAdapter(Adapter[ConfigT]):
    label: ClassVar[str]
    product: ClassVar[messaging.Product]
    profile_fields: ClassVar[str]
    # Sender actions (`mark_seen`, `typing_on`, `typing_off`), each sent alone
    # (docs/channels/messenger.md#send-api).
    signals: ClassVar[frozenset[str]] = frozenset({"mark_read", "typing_on", "typing_off"})
    # The provider's error codes as outcomes (`messaging_errors`), and the profile lookup's
    # answer as a `Profile` (`profiles`): static methods of each adapter.
    outcome_for: Callable[[GraphError], Retriable | Permanent]
    profile_of: Callable[[dict[str, object]], Profile]

    def account(self, config: Any) -> Account:
        raise NotImplementedError

    def handshake(self, config: Any, request: WebhookRequest) -> WebhookReply:
        return handshake(self.account(config).verify_token, request, self.label)

    def verify(self, config: Any, request: WebhookRequest) -> None:
        verify_signature(self.account(config).secrets, request, self.label)

    def split(self, config: Any, request: WebhookRequest) -> list[RawEvent]:
        return messaging.split(request.body, self.product, self.account(config).account_id)

    def parse(self, config: Any, payload: bytes) -> list[CanonicalEvent]:
        return messaging.parse(payload, self.product)

    def ack(self, config: Any, request: WebhookRequest) -> WebhookReply:
        return WebhookReply(status=200, body=b"EVENT_RECEIVED")

    def interactive(self, choices: Choices) -> tuple[MessageKind, str, dict[str, Any]]:
        """Quick replies or a button template (`channels.interactive.InteractiveSender`)."""
        return meta_interactive.build(choices, self.label)

    async def send(
        self, config: Any, message: OutboundMessage, http: httpx.AsyncClient
    ) -> SendOutcome:
        a = self.account(config)
        if a.upload_node:
            prepared = await attachments.with_uploads(
                message,
                upload_url=f"{a.graph}/{a.upload_node}/message_attachments",
                token=a.token,
                http=http,
                label=self.label,
                platform=a.upload_platform,
            )
            if isinstance(prepared, Retriable | Permanent):
                return prepared
            message = prepared
        body = send.build_body(message)
        if isinstance(body, Permanent):
            return body
        url = f"{a.graph}/{a.send_node}/messages"
        ids = partial(send.sent_id, body, message_id=message.message_id)
        return await send.post(url, a.token, body, http, self.label, self.outcome_for, ids)

    async def locate_media(
        self, config: Any, provider_media_id: str | None, url: str | None, http: httpx.AsyncClient
    ) -> MediaLocation:
        return cdn_location(url)

    async def fetch_profile(self, config: Any, address: str, http: httpx.AsyncClient) -> Profile:
        """User Profile lookup (`channels.profiles.ProfileSource`); chat-plugin visitors
        (`user_ref:`) have no numeric id and no profile."""
        if not address.isdigit():
            return Profile(name=None)
        a = self.account(config)
        doc = await profiles.fetch(
            f"{a.graph}/{address}", a.token, self.profile_fields, self.label, http
        )
        return self.profile_of(doc)
