"""Agent replies: policy check, then message (queued) + delivery row in one transaction; and
recording what the provider said when the delivery worker sent it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value

from tidings.access import Principal, require_conversation
from tidings.actions import consent, gate, media, sla
from tidings.actions.base import Tx, transaction

# `choose_route` is also imported from here by api/media.py.
from tidings.actions.gate import Route as Route
from tidings.actions.gate import choose_route as choose_route
from tidings.actions.statuses import StatusReport, do_apply_statuses
from tidings.channels.base import Permanent, Sent
from tidings.delivery import fallback
from tidings.domain.enums import (
    DeliveryState,
    Direction,
    MessageKind,
    MessageStatus,
)
from tidings.runtime import Runtime
from tidings.serialize import conversation_dict, message_dict
from tidings.storage.models import (
    Attachment,
    Channel,
    Conversation,
    Delivery,
    MediaUpload,
    Message,
    table_of,
)
from tidings.storage.types import utcnow


async def check_send_reply(
    rt: Runtime,
    who: Principal,
    conversation_id: int,
    text: str | None,
    channel_id: int | None = None,
    attachment_ids: Sequence[int] = (),
) -> Message:
    async with transaction(rt) as tx:
        s = tx.session
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        route = await choose_route(tx, conv, channel_id)
        # Files are checked against the chosen channel's limits before anything is queued.
        uploads = await media.take_uploads(
            tx, conv, attachment_ids, route.channel, with_text=text is not None
        )
        kind = MessageKind.MEDIA if uploads else MessageKind.TEXT
        tag = await gate.check_send(s, conv, route, kind, text, person=True)
        return await do_queue_message(
            tx,
            conv,
            route,
            kind,
            text,
            sender_agent_id=who.agent_id,
            extra={"tag": tag} if tag else None,
            uploads=uploads,
        )


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to queue (see `do_queue_messages`)."""

    conv: Conversation
    route: Route
    kind: MessageKind
    text: str | None
    sender_agent_id: int | None = None
    extra: dict[str, Any] | None = None
    uploads: Sequence[MediaUpload] = ()
    # A broadcast is not an agent answering: the customer's unread messages stay unread.
    keep_unread: bool = False


async def do_queue_message(
    tx: Tx,
    conv: Conversation,
    route: Route,
    kind: MessageKind,
    text: str | None,
    *,
    sender_agent_id: int | None,
    extra: dict[str, Any] | None = None,
    uploads: Sequence[MediaUpload] = (),
) -> Message:
    """Precondition: the policy layer allowed this send. Writes the message and its delivery.

    `extra` is what the adapter needs beyond kind and text (a message tag, a template, the
    attachments to send); it reaches the adapter as `OutboundMessage.extra`."""
    item = Outgoing(conv, route, kind, text, sender_agent_id, extra, uploads)
    return (await do_queue_messages(tx, [item]))[0]


async def do_queue_messages(tx: Tx, items: Sequence[Outgoing]) -> list[Message]:
    """`do_queue_message` for many at once: the same rows, events and hooks, written with one
    flush per kind of row instead of two per message. (A campaign's batch has its own Core
    version, `campaigns.fanout._queue`.)"""
    now = utcnow()
    s = tx.session
    messages = [
        Message(
            workspace_id=it.conv.workspace_id,
            conversation_id=it.conv.id,
            channel_id=it.route.channel.id,
            direction=Direction.OUT,
            kind=it.kind,
            body=it.text,
            sender_agent_id=it.sender_agent_id,
            status=MessageStatus.QUEUED,
            sent_at=now,
            created_at=now,
            updated_at=now,
            extra=dict(it.extra or {}),
        )
        for it in items
    ]
    s.add_all(messages)
    await s.flush()
    attached: list[list[Attachment]] = []
    for it, message in zip(items, messages, strict=True):
        attached.append(
            await media.do_attach_uploads(tx, message, it.uploads, it.text) if it.uploads else []
        )
    deliveries = [
        Delivery(
            workspace_id=it.conv.workspace_id,
            message_id=message.id,
            channel_id=it.route.channel.id,
            conversation_id=it.conv.id,
            recipient=it.route.recipient,
            state=DeliveryState.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
            fallback={},
        )
        for it, message in zip(items, messages, strict=True)
    ]
    s.add_all(deliveries)
    for it, attachments in zip(items, attached, strict=True):
        conv = it.conv
        conv.last_activity_at = now
        conv.updated_at = now
        if not it.keep_unread:
            conv.unread_count = 0
        if it.sender_agent_id is not None:
            await sla.on_agent_reply(tx, conv)
        if it.text:
            conv.last_message_preview = it.text[:160]
        elif attachments:
            conv.last_message_preview = f"[{attachments[0].kind}]"
    await s.flush()
    for it, message, attachments in zip(items, messages, attached, strict=True):
        conv = it.conv
        await fallback.arm_for_reply(tx, message, conv)
        tx.emit(
            "message.created", conv.workspace_id, conv.inbox_id, message_dict(message, attachments)
        )
        tx.emit("conversation.updated", conv.workspace_id, conv.inbox_id, conversation_dict(conv))
    tx.wake_after_commit("delivery")
    return messages


async def do_record_failures(tx: Tx, items: Sequence[tuple[Delivery, Message, Permanent]]) -> None:
    """Deliveries that failed for good, each with a reason the agent can read, for a group (the
    delivery worker records what finished together). The messages' status goes through the one
    status path (`actions.statuses`): a failure never undoes a receipt that came first.
    Accepted sends take `do_record_sent`."""
    for delivery, message, outcome in items:
        await _apply_failure(tx, delivery, message, outcome)
    await tx.session.flush()
    reports = [
        StatusReport(
            status=MessageStatus.FAILED,
            message_id=message.id,
            error_code=outcome.code,
            error_reason=outcome.reason,
        )
        for _delivery, message, outcome in items
    ]
    applied = await do_apply_statuses(tx, reports)
    # The ORM objects the caller holds learn what the statement did (without a flush).
    for _delivery, message, _outcome in items:
        moved = applied.moved.get(message.id)
        if moved is not None:
            for name in ("status", "error_code", "error_reason", "updated_at"):
                set_committed_value(message, name, getattr(moved, name))


async def do_record_sent(tx: Tx, items: Sequence[tuple[int, int, Sent]]) -> None:
    """Final outcomes of sends the provider accepted — (delivery id, message id, Sent) —
    in Core statements: the delivery worker's hot path, where loading and flushing ORM objects
    cost more than the send. The delivery rows here; the messages' status and provider id
    through the one status path (`actions.statuses`), so a send answer that comes after a
    receipt (delivered, read) does not move the message back."""
    if not items:
        return
    now = utcnow()
    d = table_of(Delivery)
    # One UPDATE for the group's deliveries (the same values for all).
    await tx.session.execute(
        update(d)
        .where(d.c.id.in_([delivery_id for delivery_id, _message_id, _sent in items]))
        .values(state=DeliveryState.DONE, lease_until=None, updated_at=now)
    )
    # A message deleted with its conversation while in flight is simply not found.
    await do_apply_statuses(
        tx,
        [
            StatusReport(
                status=MessageStatus.SENT,
                message_id=message_id,
                provider_message_id=sent.provider_message_id,
            )
            for _delivery_id, message_id, sent in items
        ],
    )


async def _apply_failure(tx: Tx, delivery: Delivery, message: Message, outcome: Permanent) -> None:
    now = utcnow()
    delivery.updated_at = now
    delivery.lease_until = None
    delivery.state = DeliveryState.FAILED
    delivery.last_error = outcome.reason
    channel = await tx.session.get(Channel, delivery.channel_id)
    if channel is not None:
        channel.last_error, channel.last_error_at = delivery.last_error, now
    if outcome.recipient_opted_out:
        await consent.do_record_provider_opt_out(tx, delivery.channel_id, message, outcome.code)
