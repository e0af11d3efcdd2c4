"""Every optional adapter capability, in one place next to `base.ChannelAdapter`.

An adapter may implement any of these small protocols; callers test `isinstance(adapter, X)`,
so no code branches on the channel kind. Each protocol is defined beside the types it works
with and listed here, with the name the API and the browser use for it
(`GET /api/v1/channel-kinds` → `optional`):

- `read_receipts` — `ReadReceiptSender` (agent_events): tell the customer an agent read it
- `typing` — `TypingSender` (agent_events): show the customer that an agent is typing
- `signals` — `SignalSender` (interactive): mark-read and typing as signals through `send`
- `interactive` — `InteractiveSender` (interactive): buttons, lists, quick replies
- `named_reactions` — `NamedReactions` (interactive): reactions sent by name
- `profiles` — `ProfileSource` (profiles): the customer's name (and picture)
- `reply_context` — `ReplyContextUser` (reply_context): answer with a message's reply token
- `message_pricing` — `PricedMessages` (pricing): a price per message
- `webhook_setup` — `WebhookRegistrar` (webhook_setup): Tidings sets the provider's webhook
- `template_sync` — `TemplateSource` (message_templates): approved templates can be listed
- `multicast` — `MulticastSender` (multicast): one provider call to many recipients
- `media_locator` — `MediaLocator` (media): where to download a customer's file

Typing reaches the customer by one of two paths today: `TypingSender.send_typing` (RBM,
Telegram: a call of its own) or a `SignalSender` whose signals include `typing_on` (Meta's
sender actions travel through `send`); `typing` below is true for either.
"""

from __future__ import annotations

from tidings.channels.agent_events import ReadReceiptSender, TypingSender
from tidings.channels.base import ChannelAdapter
from tidings.channels.interactive import InteractiveSender, NamedReactions, SignalSender
from tidings.channels.media import MediaLocator
from tidings.channels.message_templates import TemplateSource
from tidings.channels.multicast import MulticastSender
from tidings.channels.pricing import PricedMessages
from tidings.channels.profiles import ProfileSource
from tidings.channels.reply_context import ReplyContextUser
from tidings.channels.webhook_setup import WebhookRegistrar

PROTOCOLS: dict[str, type] = {
    "read_receipts": ReadReceiptSender,
    "typing": TypingSender,
    "signals": SignalSender,
    "interactive": InteractiveSender,
    "named_reactions": NamedReactions,
    "profiles": ProfileSource,
    "reply_context": ReplyContextUser,
    "message_pricing": PricedMessages,
    "webhook_setup": WebhookRegistrar,
    "template_sync": TemplateSource,
    "multicast": MulticastSender,
    "media_locator": MediaLocator,
}


def optional_capabilities(adapter: ChannelAdapter) -> list[str]:
    """The names of the optional protocols `adapter` implements, in PROTOCOLS order."""
    names = [name for name, proto in PROTOCOLS.items() if isinstance(adapter, proto)]
    signals: frozenset[str] = getattr(adapter, "signals", frozenset())
    if "typing" not in names and "typing_on" in signals:
        names.insert(names.index("signals") if "signals" in names else 0, "typing")
    return names
