"""What automation reads as the customer's own words.

Inbound `system` lines (a provider's notice such as "the customer changed their WhatsApp
number", or a consent change) and notes sit in the thread with direction `in`, but the customer
wrote none of them: conditions, greetings and webhook payloads must look past them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select

from tidings.domain.enums import Direction, MessageKind
from tidings.storage.models import Message

FROM_CUSTOMER = and_(
    Message.direction == Direction.IN,
    Message.kind.not_in((MessageKind.NOTE, MessageKind.SYSTEM)),
)


def written_by_customer(message: Message) -> bool:
    return message.direction == Direction.IN and message.kind not in (
        MessageKind.NOTE,
        MessageKind.SYSTEM,
    )


async def last_from_customer(s: Any, conversation_id: int) -> Message | None:
    """The customer's latest message in a conversation."""
    query = select(Message).where(Message.conversation_id == conversation_id, FROM_CUSTOMER)
    found: Message | None = await s.scalar(query.order_by(Message.id.desc()).limit(1))
    return found
