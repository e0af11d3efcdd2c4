"""Optional capability: an adapter that answers a customer's message with something that
message carried (LINE's reply token: free, single use, valid for about a minute).

The delivery worker reads the `extra` of the customer's latest message in the conversation on
that channel, only for such adapters and only if it arrived within `reply_context_seconds`, and
hands it over as `OutboundMessage.reply_context`. The adapter decides what to do with it.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable


@runtime_checkable
class ReplyContextUser(Protocol):
    reply_context_seconds: ClassVar[float]
    # The `extra` key the adapter needs (LINE: "reply_token"); messages without it are skipped.
    reply_context_key: ClassVar[str]
