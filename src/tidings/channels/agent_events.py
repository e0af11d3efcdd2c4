"""Optional adapter capabilities: telling the customer's app that an agent read their messages
(RBM agent event READ, docs/channels/rbm.md#sending-and-agent-events) or is typing (RBM IS_TYPING,
Telegram `sendChatAction` "typing", docs/channels/telegram.md#chat-actions).

Adapters that can do one implement the matching protocol next to `ChannelAdapter`; callers test
`isinstance(adapter, ReadReceiptSender)` / `isinstance(adapter, TypingSender)`, so no code
branches on the channel kind.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import httpx

from tidings.channels.base import SendOutcome


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
