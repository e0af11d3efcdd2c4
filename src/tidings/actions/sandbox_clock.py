"""The sandbox's clock for service windows: make a customer's last message look older, so a
closed window (and the template it calls for) can be tried without waiting a day. Only the
sandbox's phone page calls this (`simulators/sandbox.py`, with TIDINGS_SANDBOX=1)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tidings.actions.base import transaction
from tidings.domain import live_events
from tidings.runtime import ChannelInfo, Runtime
from tidings.serialize import conversation_dict
from tidings.storage.models import ContactIdentity, Conversation, ConversationChannel
from tidings.storage.types import utcnow


async def do_age_window(
    rt: Runtime, channel: ChannelInfo, addresses: list[str], hours: float
) -> int:
    """Move the customer's last inbound time on `channel` to `hours` ago in each of their
    conversations of the channel's inbox; returns how many conversations changed."""
    at = utcnow() - timedelta(hours=hours)
    changed = 0
    async with transaction(rt) as tx:
        s = tx.session
        contact_id = await s.scalar(
            select(ContactIdentity.contact_id).where(
                ContactIdentity.workspace_id == channel.workspace_id,
                ContactIdentity.channel_kind == channel.kind,
                ContactIdentity.address.in_(addresses),
            )
        )
        if contact_id is None:
            return 0
        for conv in await s.scalars(
            select(Conversation).where(
                Conversation.contact_id == contact_id, Conversation.inbox_id == channel.inbox_id
            )
        ):
            row = await s.get(ConversationChannel, (conv.id, channel.id))
            if row is None or row.last_inbound_at is None:
                continue
            row.last_inbound_at = min(row.last_inbound_at, at)
            if conv.last_inbound_at is not None:
                conv.last_inbound_at = min(conv.last_inbound_at, at)
            changed += 1
            await s.flush()
            # The inbox redraws the window chip and the composer from the conversation.
            tx.emit_for(live_events.CONVERSATION_UPDATED(conversation_dict(conv)), conv)
    return changed
