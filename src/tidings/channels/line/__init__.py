"""LINE Messaging API channel (kind `line`).

Public surface: `LineAdapter` (registered in `channels/registry.py`) and `LineConfig`. The
customer's identity is their LINE userId (`U…`), or the group/room id (`C…`/`R…`) for a group
chat. Facts, in our words, with links to LINE's reference: docs/channels/line.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from tidings.channels.base import (
    Adapter,
    Capabilities,
    OutboundMessage,
    SendOutcome,
    WebhookRequest,
)
from tidings.channels.interactive import Choices, Refused, check_length, unique_titles
from tidings.channels.line import client, webhook
from tidings.channels.line.config import LineConfig
from tidings.channels.media import MediaLocation
from tidings.channels.profiles import Profile
from tidings.domain.enums import MessageKind

__all__ = ["LineAdapter", "LineConfig"]

_MB = 1024 * 1024


class LineAdapter(Adapter[LineConfig]):
    kind: ClassVar[str] = "line"
    label: ClassVar[str] = "LINE"
    capabilities: ClassVar[Capabilities] = Capabilities(
        color="#06c755",
        icon="message-circle-heart",
        # 5,000 UTF-16 code units; `client.build_messages` checks the UTF-16 count itself.
        text_max_length=5000,
        # No customer-service window: push works any time (and spends the monthly quota).
        service_window_hours=None,
        # LINE reports neither delivery nor reading of a bot's messages.
        receipts=("sent",),
        # Inbound limits (what customers send): images, video, audio and files of up to 200 MB
        # as LINE hands them to bots; outbound goes by URL (LINE fetches it).
        media_types={
            "image/": 10 * _MB,
            "video/": 200 * _MB,
            "audio/": 200 * _MB,
            "application/": 200 * _MB,
            "text/": 200 * _MB,
        },
        # Push: 2,000 requests per second per channel (docs/channels/line.md, "Limits").
        rate_per_second=2000.0,
    )
    split_body = staticmethod(webhook.split)
    parse_payload = staticmethod(webhook.parse)
    send_with = staticmethod(client.send)
    config_model: ClassVar[type[BaseModel]] = LineConfig
    handshake_refusal = "LINE has no GET handshake; set the webhook URL in the Console"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"channel_secret", "channel_access_token"})
    # ReplyContextUser (channels/optional.py): the reply token of the customer's latest
    # message, while it may still be valid.
    reply_context_seconds: ClassVar[float] = client.REPLY_TOKEN_SECONDS
    reply_context_key: ClassVar[str] = "reply_token"
    # MulticastSender (channels/optional.py): a campaign's same message to many friends.
    multicast_max: ClassVar[int] = client.MULTICAST_MAX
    multicast_rate_per_second: ClassVar[float] = client.MULTICAST_RATE

    def verify(self, config: Any, request: WebhookRequest) -> None:
        webhook.verify(self.cfg(config).channel_secret, request)

    def multicast_key(self, config: Any, message: OutboundMessage) -> str | None:
        return client.multicast_key(message)

    async def send_many(
        self, config: Any, messages: Sequence[OutboundMessage], http: httpx.AsyncClient
    ) -> list[SendOutcome]:
        return await client.multicast(self.cfg(config), messages, http)

    # TypingSender (channels/optional.py): LINE's loading animation.
    async def send_typing(self, config: Any, to: str, http: httpx.AsyncClient) -> SendOutcome:
        return await client.start_loading(self.cfg(config), to, http)

    # MediaLocator (channels/media.py; the media worker calls it through media/fetch.py)
    async def locate_media(
        self, config: Any, provider_media_id: str | None, url: str | None, http: httpx.AsyncClient
    ) -> MediaLocation:
        return await client.locate_media(self.cfg(config), provider_media_id, url, http)

    # FileSender (media/sending.py)
    def file_refusal(self, config: Any, *, kind: str | None, with_text: bool) -> str | None:
        # LINE has no upload API for messages: it fetches each file from a public https URL,
        # and Tidings does not publish agents' uploads (docs/channels/line.md, "Media").
        return (
            "LINE fetches files from public https addresses; files uploaded to Tidings cannot "
            "be sent on LINE yet."
        )

    # ProfileSource (channels/profiles.py)
    async def fetch_profile(self, config: Any, address: str, http: httpx.AsyncClient) -> Profile:
        return await client.fetch_profile(self.cfg(config), address, http)

    # InteractiveSender (channels/interactive.py): buttons and quick replies as LINE quick
    # replies (at most 13, labels of up to 20 characters).
    def interactive(self, choices: Choices) -> tuple[MessageKind, str, dict[str, Any]]:
        if choices.type == "list":
            raise Refused("LINE has no list messages; offer up to 13 quick replies instead.")
        if not choices.buttons:
            raise Refused("LINE quick replies need at least one button.")
        if len(choices.buttons) > client.QUICK_REPLY_MAX:
            raise Refused(f"LINE shows at most {client.QUICK_REPLY_MAX} quick replies.")
        unique_titles(choices.buttons, self.label)
        for b in choices.buttons:
            check_length("a quick reply label", b.title, client.QUICK_REPLY_LABEL, self.label)
        items = [
            {"type": "action", "action": client.action_for(b.title, b.id, b.url)}
            for b in choices.buttons
        ]
        body = "\n".join(p for p in (choices.header, choices.body, choices.footer) if p)
        return MessageKind.INTERACTIVE, body, {"line_quick_reply": items}

    # `tidings doctor` (doctor.py): the token works, and the month's push quota is not spent.
    async def check_credentials(self, config: Any, http: httpx.AsyncClient) -> str | None:
        try:
            q = await client.quota(self.cfg(config), http)
        except client.LineApiError as exc:
            return exc.reason
        except httpx.HTTPError as exc:
            return f"LINE did not answer ({type(exc).__name__})"
        if q.remaining == 0:
            return f"the monthly push quota is used up ({q.sentence()}); replies still work"
        return None

    async def health_summary(self, config: Any, http: httpx.AsyncClient) -> str:
        """What Settings and `tidings doctor` show beside the channel: the quota left."""
        return (await client.quota(self.cfg(config), http)).sentence()
