"""Optional capability: the provider bills some messages by the message, not by SMS segment.

Viber bills chatbot-initiated messages (outside the 24 h session a customer's message opens)
and carries session messages for free (docs/channels/viber.md, "Sessions and cost"). An adapter
that implements `PricedMessages` gives the campaign planner a cost per message, shown in the
campaign preview and summed in reports like SMS costs. Prices come from the same table as SMS
(`TIDINGS_SMS_PRICES`, keyed by channel kind; `policy/sms.py`), since contracts differ.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class PricedMessages(Protocol):
    def message_cost(
        self, config: Any, *, last_inbound_at: datetime | None, now: datetime
    ) -> tuple[Decimal, str] | None:
        """(cost, ISO currency) of one message to a customer who last wrote at
        `last_inbound_at`, or None when no price is configured."""
        ...

    def billing_note(self, *, last_inbound_at: datetime | None, now: datetime) -> str:
        """A few words for the composer's channel picker: free now, or billed."""
        ...
