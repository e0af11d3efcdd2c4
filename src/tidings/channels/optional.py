"""Every optional adapter capability, in one place next to `base.ChannelAdapter`.

An adapter may implement any of these small protocols; callers test `isinstance(adapter, X)`,
so no code branches on the channel kind. Each protocol is defined here, or beside the types it
works with (module in brackets), and listed in PROTOCOLS with the name the API and the browser
use for it (`GET /api/v1/channel-kinds` → `optional`):

- `read_receipts` — `ReadReceiptSender`: tell the customer an agent read it
- `typing` — `TypingSender`: show the customer that an agent is typing
- `signals` — `SignalSender` (interactive): mark-read and typing as signals through `send`
- `interactive` — `InteractiveSender` (interactive): buttons, lists, quick replies
- `named_reactions` — `NamedReactions` (interactive): reactions sent by name
- `profiles` — `ProfileSource` (profiles): the customer's name (and picture)
- `reply_context` — `ReplyContextUser`: answer with a message's reply token
- `message_pricing` — `PricedMessages`: a price per message
- `webhook_setup` — `WebhookRegistrar` (webhook_setup): Tidings sets the provider's webhook
- `template_sync` — `TemplateSource` (message_templates): approved templates can be listed
- `multicast` — `MulticastSender`: one provider call to many recipients
- `media_locator` — `MediaLocator` (media): where to download a customer's file

Typing reaches the customer by one of two paths today: `TypingSender.send_typing` (RBM,
Telegram: a call of its own) or a `SignalSender` whose signals include `typing_on` (Meta's
sender actions travel through `send`); `typing` below is true for either.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Protocol, runtime_checkable

import httpx

from tidings.channels.base import ChannelAdapter, OutboundMessage, SendOutcome
from tidings.channels.interactive import InteractiveSender, NamedReactions, SignalSender
from tidings.channels.media import MediaLocator
from tidings.channels.message_templates import TemplateSource
from tidings.channels.profiles import ProfileSource
from tidings.channels.webhook_setup import WebhookRegistrar


# Agent events: telling the customer's app that an agent read their messages (RBM agent event
# READ, docs/channels/rbm.md#sending-and-agent-events) or is typing (RBM IS_TYPING, Telegram
# `sendChatAction` "typing", docs/channels/telegram.md#chat-actions).
@runtime_checkable
class ReadReceiptSender(Protocol):
    async def send_read(
        self, config: Any, to: str, provider_message_id: str, http: httpx.AsyncClient
    ) -> SendOutcome:
        """A read receipt for the customer's message `provider_message_id`."""
        ...


@runtime_checkable
class TypingSender(Protocol):
    async def send_typing(self, config: Any, to: str, http: httpx.AsyncClient) -> SendOutcome:
        """Show the customer that an agent is typing."""
        ...


@runtime_checkable
class ReplyContextUser(Protocol):
    """An adapter that answers a customer's message with something that message carried
    (LINE's reply token: free, single use, valid for about a minute).

    The delivery worker reads the `extra` of the customer's latest message in the conversation
    on that channel, only for such adapters and only if it arrived within
    `reply_context_seconds`, and hands it over as `OutboundMessage.reply_context`. The adapter
    decides what to do with it."""

    reply_context_seconds: ClassVar[float]
    # The `extra` key the adapter needs (LINE: "reply_token"); messages without it are skipped.
    reply_context_key: ClassVar[str]


@runtime_checkable
class PricedMessages(Protocol):
    """A provider that bills some messages by the message, not by SMS segment.

    Viber bills chatbot-initiated messages (outside the 24 h session a customer's message
    opens) and carries session messages for free (docs/channels/viber.md, "Sessions and cost").
    Such an adapter gives the campaign planner a cost per message, shown in the campaign preview
    and summed in reports like SMS costs. Prices come from the same table as SMS
    (`TIDINGS_SMS_PRICES`, keyed by channel kind; `policy/sms.py`), since contracts differ."""

    def message_cost(
        self, config: Any, *, last_inbound_at: datetime | None, now: datetime
    ) -> tuple[Decimal, str] | None:
        """(cost, ISO currency) of one message to a customer who last wrote at
        `last_inbound_at`, or None when no price is configured."""
        ...

    def billing_note(self, *, last_inbound_at: datetime | None, now: datetime) -> str:
        """A few words for the composer's channel picker: free now, or billed."""
        ...


@runtime_checkable
class MulticastSender(Protocol):
    """One provider call carries the same message to many recipients.

    LINE's multicast (`channels/line`, docs/channels/line.md "Multicast") takes up to 500 user
    ids per call. The delivery worker (`delivery/worker.py`) asks `multicast_key` for each
    claimed campaign message on such a channel; messages with equal keys (same campaign, same
    content) go together through `send_many`, up to `multicast_max` recipients per call and at
    most `multicast_rate_per_second` calls per second per channel in the shared rate limiter.
    Everything else — agents' replies, personalised content, a recipient multicast cannot
    reach — keeps the ordinary `send`."""

    multicast_max: ClassVar[int]
    multicast_rate_per_second: ClassVar[float]

    def multicast_key(self, config: Any, message: OutboundMessage) -> str | None:
        """What the provider would receive for this message, minus the recipient, or None
        when it cannot go by multicast (a group chat, a message that would be refused): two
        messages with the same key can share one call."""
        ...

    async def send_many(
        self, config: Any, messages: Sequence[OutboundMessage], http: httpx.AsyncClient
    ) -> list[SendOutcome]:
        """Send messages that share a key in one call; one outcome per message, in order.
        Never raises for provider errors."""
        ...


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
