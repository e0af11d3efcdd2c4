"""A system line: a line in the thread such as "Ana assigned this to Bo", "Rule 'VIP' added
label vip" or "Customer opted out of SMS". Never sent to a provider. Every such line is written
here, so they all look alike to the thread, the reports and outgoing webhooks."""

from __future__ import annotations

from typing import Any

from tidings.actions.base import Tx
from tidings.domain import live_events
from tidings.domain.enums import Direction, MessageKind, MessageStatus
from tidings.serialize import message_dict
from tidings.storage.models import Conversation, Message
from tidings.storage.types import utcnow

MAX_TEXT = 2000


async def do_system_line(
    tx: Tx,
    conv: Conversation,
    text: str,
    extra: dict[str, Any],
    *,
    sender_agent_id: int | None = None,
    channel_id: int | None = None,
    from_customer: bool = False,
) -> Message:
    """Write the line and announce it (`message.created`). `from_customer`: the line reports
    something the customer did through `channel_id` (an opt-out), so it is inbound."""
    now = utcnow()
    line = Message(
        workspace_id=conv.workspace_id,
        conversation_id=conv.id,
        channel_id=channel_id,
        direction=Direction.IN if from_customer else Direction.OUT,
        kind=MessageKind.SYSTEM,
        body=text[:MAX_TEXT],
        sender_agent_id=sender_agent_id,
        status=MessageStatus.RECEIVED if from_customer else MessageStatus.SENT,
        sent_at=now,
        created_at=now,
        updated_at=now,
        extra=extra,
    )
    tx.session.add(line)
    await tx.session.flush()
    tx.emit_for(live_events.MESSAGE_CREATED(message_dict(line)), conv)
    return line
