"""The one list of channel kinds. A new channel is a new package plus one line here."""

from __future__ import annotations

from tidings.channels.api import ApiChannelAdapter
from tidings.channels.base import ChannelAdapter
from tidings.channels.gbm import GbmAdapter
from tidings.channels.instagram import InstagramAdapter
from tidings.channels.line import LineAdapter
from tidings.channels.messenger import MessengerAdapter
from tidings.channels.optional import optional_capabilities
from tidings.channels.rbm import RbmAdapter
from tidings.channels.smpp import SmppAdapter
from tidings.channels.telegram import TelegramAdapter
from tidings.channels.twilio import TwilioAdapter
from tidings.channels.viber import ViberAdapter
from tidings.channels.vonage import VonageAdapter
from tidings.channels.wechat import WeChatAdapter
from tidings.channels.whatsapp import WhatsAppAdapter
from tidings.domain.errors import NotFound

_ADAPTERS: dict[str, ChannelAdapter] = {
    adapter.kind: adapter
    for adapter in (
        ApiChannelAdapter(),
        WhatsAppAdapter(),
        TwilioAdapter(),
        MessengerAdapter(),
        InstagramAdapter(),
        WeChatAdapter(),
        VonageAdapter(),
        SmppAdapter(),
        TelegramAdapter(),
        RbmAdapter(),
        GbmAdapter(),
        LineAdapter(),
        ViberAdapter(),
    )
}


def get_adapter(kind: str) -> ChannelAdapter:
    try:
        return _ADAPTERS[kind]
    except KeyError:
        raise NotFound(f"unknown channel kind {kind!r}") from None


def kinds() -> list[str]:
    return sorted(_ADAPTERS)


def kind_capabilities() -> list[dict[str, object]]:
    """What the browser needs to know about every registered kind, so that no page keeps its
    own list of channel kinds (served by `GET /api/v1/channel-kinds` and in the inbox
    bootstrap)."""
    out: list[dict[str, object]] = []
    for kind in kinds():
        adapter = _ADAPTERS[kind]
        caps = adapter.capabilities
        out.append(
            {
                "kind": kind,
                "label": adapter.label,
                "icon": caps.icon,
                "color": caps.color,
                "sms": caps.sms,
                "phone_addressed": caps.sms or caps.phone_addressed,
                "campaign_text": caps.campaign_text,
                "templates": caps.supports_templates,
                "service_window_hours": caps.service_window_hours,
                "text_max_length": caps.text_max_length,
                "receipts": list(caps.receipts),
                "optional": optional_capabilities(adapter),
            }
        )
    return out
