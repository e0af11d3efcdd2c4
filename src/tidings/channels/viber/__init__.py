"""Viber REST Bot API channel (kind `viber`): one Viber bot.

Public surface: `ViberAdapter` (registered in `channels/registry.py`) and `ViberConfig`. The
customer's identity is their Viber user id, which is per bot. Protocol facts, in our words:
docs/channels/viber.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from tidings.channels.base import Adapter, Capabilities, WebhookRequest
from tidings.channels.interactive import Choices, Refused, check_length, unique_titles
from tidings.channels.media import MediaLocation, cdn_location
from tidings.channels.profiles import Profile, ProfileUnavailable, clean
from tidings.channels.viber import client, webhook
from tidings.channels.viber.config import ViberConfig
from tidings.domain.enums import MessageKind
from tidings.policy import sms

__all__ = ["ViberAdapter", "ViberConfig"]

_MB = 1024 * 1024
# Messages inside this many hours after the customer's last message are session messages: free.
# Viber counts 24 h from the message that opened the session; some partners say from the last
# one. Counting from the last is the generous reading (docs/channels/viber.md).
SESSION_HOURS = 24
# Outbound media go by public URL (no upload API); the sizes are the newer reference's limits
# (pictures 3 MB on Android, videos 26 MB, files 50 MB). Inbound downloads use the same caps.
MEDIA_TYPES: dict[str, int] = {
    "image/jpeg": 3 * _MB,
    "image/png": 3 * _MB,
    "image/gif": 3 * _MB,
    "video/mp4": 26 * _MB,
    "audio/": 50 * _MB,
    "application/": 50 * _MB,
    "text/": 50 * _MB,
    "image/": 50 * _MB,  # other image types arrive as files
    "video/": 50 * _MB,
}


class ViberAdapter(Adapter[ViberConfig]):
    kind: ClassVar[str] = "viber"
    label: ClassVar[str] = "Viber"
    capabilities: ClassVar[Capabilities] = Capabilities(
        color="#7360f2",
        icon="phone",
        text_max_length=client.TEXT_LIMIT,
        # No window blocks a send: outside the 24 h session a message is chatbot-initiated and
        # billed instead (docs/channels/viber.md, "Sessions and cost").
        service_window_hours=None,
        receipts=("sent", "delivered", "read"),
        media_types=MEDIA_TYPES,
        # No per-bot rate is documented; broadcasts are limited to 500 requests per 10 s, which
        # is used as the bot's ceiling.
        rate_per_second=50.0,
        # At most 100 messages to one user per hour without a reply (status 12 beyond it).
        recipient_rate_per_second=100 / 3600,
        recipient_burst=100,
    )
    split_body = staticmethod(webhook.split)
    parse_payload = staticmethod(webhook.parse)
    send_with = staticmethod(client.send_message)
    config_model: ClassVar[type[BaseModel]] = ViberConfig
    # `ack` is the empty 200: no welcome message is sent in answer to conversation_started
    # (agents answer in the thread once the user writes).
    handshake_refusal = "Viber has no GET handshake; the webhook is set with set_webhook"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"auth_token"})

    def verify(self, config: Any, request: WebhookRequest) -> None:
        webhook.verify(self.cfg(config).auth_token, request)

    # channels.interactive.InteractiveSender: choices become a Viber keyboard.
    def interactive(self, choices: Choices) -> tuple[MessageKind, str, dict[str, Any]]:
        items = list(choices.buttons) + [row for s in choices.sections for row in s.rows]
        if not items:
            raise Refused("Viber: a keyboard needs at least one button.")
        if len(items) > client.MAX_BUTTONS:
            raise Refused(f"Viber: at most {client.MAX_BUTTONS} keyboard buttons.")
        unique_titles(tuple(items), "Viber")
        check_length("the text", choices.body, client.TEXT_LIMIT, "Viber")
        text = "\n".join(p for p in (choices.header, choices.body, choices.footer) if p)
        buttons = [
            {"text": c.title, "url": c.url} if c.url else {"text": c.title, "data": c.id}
            for c in items
        ]
        return MessageKind.INTERACTIVE, text, {"buttons": buttons}

    async def locate_media(
        self, config: Any, provider_media_id: str | None, url: str | None, http: httpx.AsyncClient
    ) -> MediaLocation:
        """The callback's own URL, fetched at once: Viber's media URLs live one hour and need
        no token (`media.MediaLocator`; fetched through the egress policy)."""
        return cdn_location(url)

    async def fetch_profile(self, config: Any, address: str, http: httpx.AsyncClient) -> Profile:
        """`get_user_details` (`channels.profiles.ProfileSource`). Viber allows 2 calls per user
        per 12 hours; the profiles worker asks at most once a day per identity, and a refusal
        is not retried soon."""
        try:
            status, doc = await client.get_user_details(self.cfg(config), address, http)
        except httpx.HTTPError as exc:
            raise ProfileUnavailable(
                f"Could not reach Viber ({type(exc).__name__})", retriable=True
            ) from None
        data = doc if isinstance(doc, dict) else {}
        if status >= 500 or status == 429:
            raise ProfileUnavailable(f"Viber answered HTTP {status}", retriable=True)
        if data.get("status") != 0:
            said = data.get("status_message") or f"status {data.get('status')}"
            # Status 12 (the 2-per-12-hours limit) included: not asked again for a day.
            raise ProfileUnavailable(f"Viber get_user_details: {said}", retriable=False)
        user = data.get("user") if isinstance(data.get("user"), dict) else {}
        assert isinstance(user, dict)
        # The avatar's address is kept (Viber serves it from its CDN); Tidings stores no copy
        # and serves it from its own origin (api/avatars.py; docs/channels/viber.md, "Profiles").
        avatar = user.get("avatar")
        return Profile(
            name=clean(user.get("name")),
            picture_url=avatar
            if isinstance(avatar, str) and avatar.startswith("https://") and len(avatar) <= 2000
            else None,
        )

    # channels.optional.PricedMessages: chatbot-initiated messages are billed.
    def message_cost(
        self, config: Any, *, last_inbound_at: datetime | None, now: datetime
    ) -> tuple[Decimal, str] | None:
        table = sms.price_table()
        price = table.per_segment(self.kind, None)
        if price is None:
            return None
        in_session = last_inbound_at is not None and now - last_inbound_at < timedelta(
            hours=SESSION_HOURS
        )
        return (Decimal(0) if in_session else price), table.currency

    def billing_note(self, *, last_inbound_at: datetime | None, now: datetime) -> str:
        if last_inbound_at is not None:
            left = last_inbound_at + timedelta(hours=SESSION_HOURS) - now
            if left > timedelta(0):
                hours = int(left.total_seconds() // 3600)
                shown = f"{hours} h" if hours else f"{max(1, int(left.total_seconds() // 60))} min"
                return f"free session, {shown} left"
        return "outside the session: billed by Viber"

    # channels.webhook_setup.WebhookRegistrar: Tidings sets the webhook itself.
    async def register_webhook(self, config: Any, url: str, http: httpx.AsyncClient) -> None:
        await client.set_webhook(self.cfg(config), url, http)
