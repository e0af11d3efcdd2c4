"""Which channels reach a customer at their phone number, and the identity address a number has
there (campaign plans, new conversations and the contact directory all ask)."""

from __future__ import annotations

from tidings.channels.base import ChannelAdapter

# Kinds whose identity address is the customer's phone number, so a contact's phone (not an
# identity row) can be reached there. SMS adapters say so through `capabilities.sms`; WhatsApp's
# wa_id is the number's digits (its client sends `to: +<digits>`).
PHONE_ADDRESSED_KINDS = frozenset({"whatsapp"})


def phone_addressed(adapter: ChannelAdapter, kind: str) -> bool:
    """Whether a channel of this kind reaches a customer at their phone number."""
    return adapter.capabilities.sms or kind in PHONE_ADDRESSED_KINDS


def phone_identity(kind: str, e164: str) -> str:
    """The identity address a phone number has on a phone-addressed kind, as that channel's
    inbound path writes it: WhatsApp's wa_id is the digits, the SMS kinds keep E.164."""
    return e164.lstrip("+") if kind == "whatsapp" else e164
