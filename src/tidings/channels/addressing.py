"""Which channels reach a customer at their phone number, and the identity address a number has
there (campaign plans, new conversations and the contact directory all ask)."""

from __future__ import annotations

from tidings.channels.base import ChannelAdapter


def phone_addressed(adapter: ChannelAdapter, kind: str) -> bool:
    """Whether a channel of this kind reaches a customer at their phone number: the SMS kinds,
    and those whose adapter says `phone_addressed` (WhatsApp's wa_id is the number's digits)."""
    caps = adapter.capabilities
    return caps.sms or caps.phone_addressed


def phone_identity(kind: str, e164: str) -> str:
    """The identity address a phone number has on a phone-addressed kind, as that channel's
    inbound path writes it: WhatsApp's wa_id is the digits, the SMS kinds keep E.164."""
    return e164.lstrip("+") if kind == "whatsapp" else e164
