"""The customer's latest message for adapters that reply with something it carried
(`channels/optional.py`): one indexed read per send, only for those channels."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from tidings.channels.optional import ReplyContextUser
from tidings.domain.enums import Direction
from tidings.runtime import ChannelInfo, Runtime
from tidings.storage.models import Message
from tidings.storage.types import utcnow


async def load(
    rt: Runtime,
    channel: ChannelInfo,
    conversation_id: int,
    recipient: str,
    extra: Mapping[str, Any] | None,
) -> Mapping[str, Any]:
    # A plain attribute look-up: this runs before every send, and isinstance() against a
    # runtime-checkable protocol costs several of them.
    seconds = getattr(channel.adapter, "reply_context_seconds", None)
    if seconds is None:
        return {}
    if extra and extra.get("campaign"):
        # A broadcast answers no one; and a campaign of thousands should not pay a read per
        # send for the rare recipient who wrote in the last minute.
        return {}
    adapter: ReplyContextUser = channel.adapter  # type: ignore[assignment]
    since = utcnow() - timedelta(seconds=seconds)
    async with rt.db.read() as s:
        rows = (
            await s.execute(
                select(Message.extra, Message.created_at)
                .where(
                    Message.conversation_id == conversation_id,
                    Message.channel_id == channel.id,
                    Message.direction == Direction.IN,
                    Message.created_at >= since,
                )
                .order_by(Message.id.desc())
                .limit(3)
            )
        ).all()
    # A system line written after the customer's message (a consent note) carries nothing:
    # look a little further back for one that carries what the adapter needs.
    key = adapter.reply_context_key
    row = next((r for r in rows if isinstance(r.extra, dict) and r.extra.get(key)), None)
    if row is None:
        return {}
    return {**row.extra, "received_at": row.created_at.isoformat(), "recipient": recipient}
