"""Outbound messages: an agent's reply (gate, then message + delivery in one transaction:
`do_send`, which the other writers of one message use too); the one write path every queued
message takes — replies, rules, CSAT, fallback (`do_queue_messages`) and campaign batches
(`do_queue_broadcast`), both through `_insert_outbound`; and recording what the provider said
when the delivery worker sent it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm.attributes import set_committed_value

from tidings.access import Principal, require_conversation
from tidings.actions import consent, fallback, gate, media, sla
from tidings.actions.base import Tx, lock_contacts, transaction
from tidings.actions.gate import Route, choose_route

# `choose_route` is also imported from here by api/media.py.
from tidings.actions.statuses import StatusReport, do_apply_statuses
from tidings.channels.base import Permanent, Sent
from tidings.domain import live_events
from tidings.domain.enums import (
    ConversationStatus,
    DeliveryState,
    Direction,
    MessageKind,
    MessageStatus,
    Queue,
)
from tidings.runtime import Runtime
from tidings.serialize import conversation_dict, message_dict
from tidings.storage.models import (
    Channel,
    Conversation,
    ConversationLabel,
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
        return await do_send(
            tx, conv, route, kind, text, sender_agent_id=who.agent_id, tagged=True, uploads=uploads
        )


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to queue into a conversation the caller holds (see `do_queue_messages`)."""

    conv: Conversation
    route: Route
    kind: MessageKind
    text: str | None
    sender_agent_id: int | None = None
    extra: dict[str, Any] | None = None
    uploads: Sequence[MediaUpload] = ()
    # An automatic message is not an agent answering: the customer's unread messages stay
    # unread.
    keep_unread: bool = False
    cost_estimate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Broadcast:
    """One campaign message to a contact (see `do_queue_broadcast`)."""

    contact_id: int
    route: Route
    kind: MessageKind
    text: str | None
    extra: dict[str, Any]
    cost_estimate: Decimal | None
    recipient_id: int


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
    keep_unread: bool = False,
    cost_estimate: Decimal | None = None,
) -> Message:
    """Precondition: the outbound gate allowed this send (`gate.check_send`). Writes the
    message and its delivery.

    `extra` is what the adapter needs beyond kind and text (a message tag, a template, the
    attachments to send); it reaches the adapter as `OutboundMessage.extra`."""
    item = Outgoing(
        conv, route, kind, text, sender_agent_id, extra, uploads, keep_unread, cost_estimate
    )
    return (await do_queue_messages(tx, [item]))[0]


async def do_send(
    tx: Tx,
    conv: Conversation,
    route: Route,
    kind: MessageKind,
    text: str | None,
    *,
    sender_agent_id: int | None,
    extra: dict[str, Any] | None = None,
    tagged: bool = False,
    **options: Any,
) -> Message:
    """The outbound gate (`gate.check_send`: a person's message when it has a sender agent),
    then `do_queue_message`. `tagged`: the message carries the tag the gate asks for (Meta's
    HUMAN_AGENT after the standard window)."""
    person = sender_agent_id is not None
    tag = await gate.check_send(tx.session, conv, route, kind, text, person=person)
    if tagged and tag:
        extra = {**(extra or {}), "tag": tag}
    return await do_queue_message(
        tx, conv, route, kind, text, sender_agent_id=sender_agent_id, extra=extra, **options
    )


async def _insert_outbound(
    tx: Tx,
    rows: Sequence[tuple[int, Route, MessageKind, str | None, int | None, Any, Decimal | None]],
) -> list[int]:
    """The one place an outbound message's rows are written: per (conversation id, route, kind,
    text, sender agent, extra, cost estimate) a `queued` message and its `pending` delivery, as
    Core statements, one per kind of row. Returns the message ids in order."""
    if not rows:
        return []
    s, db, now = tx.session, tx.rt.db, utcnow()
    ids = await db.insert_rows(
        s,
        Message,
        [
            {
                "workspace_id": route.channel.workspace_id,
                "conversation_id": conv_id,
                "channel_id": route.channel.id,
                "direction": Direction.OUT,
                "kind": kind,
                "body": text,
                "sender_agent_id": sender,
                "status": MessageStatus.QUEUED,
                "sent_at": now,
                "created_at": now,
                "updated_at": now,
                "cost_estimate": cost,
                "extra": dict(extra or {}),
            }
            for conv_id, route, kind, text, sender, extra, cost in rows
        ],
    )
    await s.execute(
        insert(Delivery),
        [
            {
                "workspace_id": route.channel.workspace_id,
                "message_id": message_id,
                "channel_id": route.channel.id,
                "conversation_id": conv_id,
                "recipient": route.recipient,
                "state": DeliveryState.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
                "fallback": {},
            }
            for (conv_id, route, *_rest), message_id in zip(rows, ids, strict=True)
        ],
    )
    tx.wake_after_commit(Queue.DELIVERY)
    return ids


async def do_queue_messages(tx: Tx, items: Sequence[Outgoing]) -> list[Message]:
    """`do_queue_message` for many at once (agents, rules, CSAT, fallback): the rows through
    `_insert_outbound`, then the conversations the caller holds (activity, unread, SLA,
    preview), the reply fallback timer and the live events. Campaigns take
    `do_queue_broadcast`, which writes the same rows."""
    now = utcnow()
    s = tx.session
    ids = await _insert_outbound(
        tx,
        [
            (it.conv.id, it.route, it.kind, it.text, it.sender_agent_id, it.extra, it.cost_estimate)
            for it in items
        ],
    )
    loaded = {m.id: m for m in await s.scalars(select(Message).where(Message.id.in_(ids)))}
    messages = [loaded[i] for i in ids]
    for it, message in zip(items, messages, strict=True):
        attachments = (
            await media.do_attach_uploads(tx, message, it.uploads, it.text) if it.uploads else []
        )
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
        await fallback.arm_for_reply(tx, message, conv)
        tx.emit_for(live_events.MESSAGE_CREATED(message_dict(message, attachments)), conv)
        tx.emit_for(live_events.CONVERSATION_UPDATED(conversation_dict(conv)), conv)
    return messages


async def do_queue_broadcast(
    tx: Tx, items: Sequence[Broadcast], label_id: int, fallback_plan: dict[str, Any] | None
) -> list[tuple[int, int]]:
    """Precondition: each send passed the gate (the campaign planner's `gate.decide`). Queue
    one message per item to its contact — the rows and events a reply makes, through
    `_insert_outbound` — into the contact's current conversation in the channel's inbox, or a
    new one, labelled `label_id`; arm the campaign's fallback. Everything as Core statements,
    one per kind of row for the batch: ORM objects were most of the fan-out's CPU. Returns
    (conversation id, message id) per item."""
    if not items:
        return []
    s, db = tx.session, tx.rt.db
    now = utcnow()
    conv_t, msg_t = Conversation.__table__, Message.__table__
    contact_ids = sorted({it.contact_id for it in items})
    await lock_contacts(tx, contact_ids)  # conversation creation, per contact
    # The customer's current (unresolved) conversation in the channel's inbox, the latest one
    # winning; by contact only, the inbox filtered here (see `inbound.open_conversations`).
    inboxes = {it.route.channel.inbox_id for it in items}
    current: dict[tuple[int, int], int] = {}
    for conv_id, contact_id, inbox_id in await s.execute(
        select(conv_t.c.id, conv_t.c.contact_id, conv_t.c.inbox_id)
        .where(
            conv_t.c.contact_id.in_(contact_ids),
            conv_t.c.status != ConversationStatus.RESOLVED,
        )
        .order_by(conv_t.c.id)
    ):
        if inbox_id in inboxes:
            current[(contact_id, inbox_id)] = conv_id
    # Conversations a broadcast opens are `resolved` — "campaign, awaiting reply": found under
    # Resolved with the campaign's label, not dropped by the thousand on the agents' open
    # list, and reopened by the customer's reply (`inbound.open_conversations`). Opened with
    # their activity, their channel (the badge; replies default to it) and preview (the last
    # text of the batch; templates: none).
    opening: dict[tuple[int, int], dict[str, object]] = {}
    for it in items:
        channel = it.route.channel
        key = (it.contact_id, channel.inbox_id)
        if key in current:
            continue
        row = opening.get(key)
        if row is None:
            row = opening[key] = {
                "workspace_id": channel.workspace_id,
                "inbox_id": channel.inbox_id,
                "contact_id": it.contact_id,
                "status": ConversationStatus.RESOLVED,
                "last_channel_id": channel.id,
                "priority": "none",
                "unread_count": 0,
                "last_activity_at": now,
                "last_message_preview": None,
                "created_at": now,
                "updated_at": now,
            }
        if it.text:
            row["last_message_preview"] = it.text[:160]
    opened = await db.insert_rows(s, Conversation, list(opening.values()))
    current.update(zip(opening, opened, strict=True))
    conv_of = [current[(it.contact_id, it.route.channel.inbox_id)] for it in items]
    message_ids = await _insert_outbound(
        tx,
        [
            (conv_id, it.route, it.kind, it.text, None, it.extra, it.cost_estimate)
            for it, conv_id in zip(items, conv_of, strict=True)
        ],
    )
    # Conversations that were already there: their activity, and their preview the last text
    # of the batch (templates: none).
    existing = set(current.values()) - set(opened)
    activity: dict[int, dict[str, object]] = {}
    for it, conv_id in zip(items, conv_of, strict=True):
        if conv_id not in existing:
            continue
        row = activity.setdefault(
            conv_id, {"id": conv_id, "last_activity_at": now, "updated_at": now}
        )
        if it.text:
            row["last_message_preview"] = it.text[:160]
    if activity:
        await s.execute(update(Conversation), list(activity.values()))
    touched = list(dict.fromkeys(conv_of))
    # One statement for every batch (parameters as an executemany, compiled once), not a
    # multi-row VALUES compiled anew for each batch's size.
    await s.execute(
        db.insert(ConversationLabel).on_conflict_do_nothing(
            index_elements=["conversation_id", "label_id"]
        ),
        [{"conversation_id": c, "label_id": label_id} for c in touched],
    )
    messages = {r.id: r for r in await s.execute(select(msg_t).where(msg_t.c.id.in_(message_ids)))}
    convs = {r.id: r for r in await s.execute(select(conv_t).where(conv_t.c.id.in_(touched)))}
    for it, conv_id, message_id in zip(items, conv_of, message_ids, strict=True):
        message, conv = messages[message_id], convs[conv_id]
        if fallback_plan:
            await fallback.arm(tx, message, fallback_plan, recipient_id=it.recipient_id)
        tx.emit_for(live_events.MESSAGE_CREATED(message_dict(message, [])), conv)
        tx.emit_for(live_events.CONVERSATION_UPDATED(conversation_dict(conv)), conv)
    return list(zip(conv_of, message_ids, strict=True))


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
