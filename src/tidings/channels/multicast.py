"""Optional capability: one provider call carries the same message to many recipients.

LINE's multicast (`channels/line`, docs/channels/line.md "Multicast") takes up to 500 user ids
per call. The delivery worker (`delivery/worker.py`) asks `multicast_key` for each claimed
campaign message on such a channel; messages with equal keys (same campaign, same content)
go together through `send_many`, up to `multicast_max` recipients per call and at most
`multicast_rate_per_second` calls per second per channel in the shared rate limiter.
Everything else — agents' replies, personalised content, a recipient multicast cannot reach —
keeps the ordinary `send`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import httpx

from tidings.channels.base import OutboundMessage, SendOutcome


@runtime_checkable
class MulticastSender(Protocol):
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
