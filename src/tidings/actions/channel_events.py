"""Applying the canonical events beyond messages and per-message statuses: receipt
watermarks, edits, deletions and template status changes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select

from tidings.actions.base import Tx
from tidings.domain import live_events
from tidings.domain.enums import Direction, MessageStatus, status_moves_forward
from tidings.domain.errors import RetryLater
from tidings.domain.events import (
    ChannelNotice,
    MessageDeleted,
    MessageEdited,
    ReceiptWatermark,
    TemplateStatus,
)
from tidings.runtime import ChannelInfo
from tidings.serialize import message_dict
from tidings.storage.models import Channel, Conversation, Delivery, Message, Template
from tidings.storage.types import utcnow

ChannelEvent = ReceiptWatermark | MessageEdited | MessageDeleted | TemplateStatus | ChannelNotice


async def do_apply_channel_event(tx: Tx, channel: ChannelInfo, event: ChannelEvent) -> None:
    await _APPLY[type(event)](tx, channel, event)


async def do_apply_watermark(tx: Tx, channel: ChannelInfo, event: ReceiptWatermark) -> int:
    """Move every message we sent to `event.recipient` on this channel up to the watermark to
    delivered/read (Messenger: "all messages sent before the watermark were delivered/read").
    Returns how many changed."""
    s = tx.session
    rows = (
        await s.scalars(
            select(Message)
            .join(Delivery, Delivery.message_id == Message.id)
            .where(
                Delivery.channel_id == channel.id,
                Delivery.recipient == event.recipient,
                Message.direction == Direction.OUT,
                Message.provider_message_id.is_not(None),
                Message.sent_at <= event.watermark,
                Message.status.in_((MessageStatus.SENT, MessageStatus.DELIVERED)),
            )
            .order_by(Message.id)
        )
    ).all()
    changed = 0
    now = utcnow()
    for message in rows:
        if not status_moves_forward(MessageStatus(message.status), event.status):
            continue
        message.status = event.status
        message.updated_at = now
        changed += 1
        conv = await s.get_one(Conversation, message.conversation_id)
        tx.emit_for(live_events.MESSAGE_UPDATED(message_dict(message)), conv)
    if changed:
        await s.flush()
    return changed


async def _message(tx: Tx, channel: ChannelInfo, provider_message_id: str) -> Message:
    message = await tx.session.scalar(
        select(Message).where(
            Message.channel_id == channel.id,
            Message.provider_message_id == provider_message_id,
        )
    )
    if message is None:
        # The edit/delete overtook the message itself; try again shortly.
        raise RetryLater(f"no message with provider id {provider_message_id} yet")
    return message


async def _changed(tx: Tx, message: Message) -> None:
    message.updated_at = utcnow()
    await tx.session.flush()
    conv = await tx.session.get_one(Conversation, message.conversation_id)
    tx.emit_for(live_events.MESSAGE_UPDATED(message_dict(message)), conv)


async def do_edit_message(tx: Tx, channel: ChannelInfo, event: MessageEdited) -> None:
    """The author changed the text: the new text shows, the earlier versions stay in
    `extra.edits` so agents can see what was said before."""
    message = await _message(tx, channel, event.provider_message_id)
    extra = dict(message.extra or {})
    edits = list(extra.get("edits") or [])
    if any(e.get("at") == event.occurred_at.isoformat() for e in edits):
        return  # the same edit again
    edits.append({"at": event.occurred_at.isoformat(), "previous": message.body})
    extra["edits"] = edits
    extra["edited_at"] = event.occurred_at.isoformat()
    message.extra = extra
    message.body = event.text
    await _changed(tx, message)


async def do_delete_message(tx: Tx, channel: ChannelInfo, event: MessageDeleted) -> None:
    """The author withdrew the message: its text is no longer shown (the customer asked for it
    to be gone); the row stays so the thread shows that something was deleted."""
    message = await _message(tx, channel, event.provider_message_id)
    extra = dict(message.extra or {})
    if extra.get("deleted_at"):
        return
    extra["deleted_at"] = event.occurred_at.isoformat()
    message.extra = extra
    message.body = None
    await _changed(tx, message)


async def do_template_status(tx: Tx, channel: ChannelInfo, event: TemplateStatus) -> None:
    """Keep a synced template's status current. A template not synced yet is created with what
    the webhook says, so a send check never uses a stale APPROVED."""
    s = tx.session
    q = select(Template).where(Template.channel_id == channel.id, Template.name == event.name)
    if event.language:
        q = q.where(Template.language == event.language)
    rows = (await s.scalars(q)).all()
    now = utcnow()
    if not rows and event.language:
        s.add(
            Template(
                workspace_id=channel.workspace_id,
                channel_id=channel.id,
                name=event.name,
                language=event.language,
                category=(event.category or "").upper() or "UNKNOWN",
                status=event.status,
                components=[],
                provider_template_id=event.provider_template_id,
                updated_at=now,
            )
        )
    for row in rows:
        row.status = event.status
        if event.category:
            row.category = event.category.upper()
        row.updated_at = now
    await s.flush()
    tx.emit_for(
        live_events.TEMPLATE_UPDATED(
            {
                "channel_id": channel.id,
                "name": event.name,
                "language": event.language,
                "status": event.status,
                "reason": event.reason,
            }
        ),
        channel,
    )


async def do_channel_notice(tx: Tx, channel: ChannelInfo, event: ChannelNotice) -> None:
    """Keep the provider's latest word about the channel itself (a policy block, a warning, a
    lifted block, changed app roles) on the channel, where Settings and `tidings doctor` show
    it. An older notice arriving late never replaces a newer one, and a severe notice (a block)
    stays until the provider says something newer on the same topic (the block is lifted): a
    harmless notice on another topic must not hide it."""
    row = await tx.session.get(Channel, channel.id)
    if row is None:
        return
    if row.notice_at is not None and row.notice_at > event.occurred_at:
        return
    if row.notice_severe and row.notice_topic and row.notice_topic != event.topic:
        return
    row.notice = event.text[:2000]
    row.notice_at = event.occurred_at
    row.notice_severe = event.severe
    row.notice_topic = event.topic[:40]
    await tx.session.flush()
    tx.emit(
        live_events.CHANNEL_NOTICE(
            {
                "channel_id": channel.id,
                "topic": event.topic,
                "notice": row.notice,
                "notice_at": event.occurred_at.isoformat(),
                "severe": event.severe,
            }
        ),
        channel.workspace_id,
        None,
    )


_APPLY: dict[type[Any], Callable[[Tx, ChannelInfo, Any], Awaitable[object]]] = {
    ReceiptWatermark: do_apply_watermark,
    MessageEdited: do_edit_message,
    MessageDeleted: do_delete_message,
    ChannelNotice: do_channel_notice,
    TemplateStatus: do_template_status,
}
