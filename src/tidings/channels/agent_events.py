"""An optional adapter capability: telling the customer's app that an agent read their
messages or is typing (RBM agent events READ / IS_TYPING, digest other.md §B4).

Adapters that can do it implement `AgentEventSender` next to `ChannelAdapter`; callers test
`isinstance(adapter, AgentEventSender)`, so no code branches on the channel kind.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import httpx

from tidings.channels.base import SendOutcome


@runtime_checkable
class AgentEventSender(Protocol):
    async def send_read(
        self, config: Any, to: str, provider_message_id: str, http: httpx.AsyncClient
    ) -> SendOutcome:
        """A read receipt for the customer's message `provider_message_id`."""
        ...

    async def send_typing(self, config: Any, to: str, http: httpx.AsyncClient) -> SendOutcome:
        """Show the customer that an agent is typing."""
        ...
