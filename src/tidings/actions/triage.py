"""Conversation triage the core actions do not cover: priority, snooze-until, marking a
conversation read, the system events that narrate changes in the thread, and retrying a
failed send."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from tidings.access import Principal, require_conversation, require_own
from tidings.actions import agent_events, gate, sla
from tidings.actions.base import transaction
from tidings.actions.conversations import do_announce
from tidings.actions.system_line import do_system_line
from tidings.domain import live_events
from tidings.domain.enums import (
    ConversationStatus,
    DeliveryState,
    Direction,
    MessageKind,
    MessageStatus,
    Queue,
)
from tidings.domain.errors import Conflict, InvalidInput
from tidings.runtime import Runtime
from tidings.serialize import message_dict
from tidings.storage.models import (
    Conversation,
    Delivery,
    Message,
)
from tidings.storage.types import utcnow

PRIORITIES = ("none", "low", "medium", "high", "urgent")
# How a delivery withdrawn on purpose begins its last error (campaign cancel, fallback).
WITHDRAWN_PREFIX = "Withdrawn:"


async def check_triage(
    rt: Runtime,
    who: Principal,
    conversation_id: int,
    *,
    priority: str | None = None,
    snoozed_until: datetime | None = None,
) -> Conversation:
    if priority is not None and priority not in PRIORITIES:
        raise InvalidInput(f"priority: one of {', '.join(PRIORITIES)}")
    now = utcnow()
    if snoozed_until is not None:
        if snoozed_until.tzinfo is None:
            raise InvalidInput("snoozed_until: give a time zone (e.g. 2026-01-01T09:00:00Z)")
        if snoozed_until <= now:
            raise InvalidInput("snoozed_until: must be in the future")
    async with transaction(rt) as tx:
        s = tx.session
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        if priority is not None:
            before, conv.priority = conv.priority, priority
            await sla.on_priority_change(tx, conv, before)  # a running SLA timer follows
        if snoozed_until is not None:
            conv.status = ConversationStatus.SNOOZED
            conv.snoozed_until = snoozed_until
        conv.updated_at = now
        await s.flush()
        await do_announce(tx, conv)
        return conv


async def check_mark_read(rt: Runtime, who: Principal, conversation_id: int) -> Conversation:
    """Clear the unread count; channels with read receipts (RBM) then tell the customer."""
    was_unread = False
    async with transaction(rt) as tx:
        s = tx.session
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        if conv.unread_count:
            was_unread = True
            conv.unread_count = 0
            conv.updated_at = utcnow()
            await s.flush()
            await do_announce(tx, conv)
    if was_unread:
        agent_events.after_read(rt, conv.id)
    return conv


async def check_record_system_event(
    rt: Runtime, who: Principal, conversation_id: int, text: str, details: dict[str, object]
) -> Message:
    """A line in the thread such as "Ana assigned this to Bo". Only our own endpoints call this,
    with text they wrote; it is never sent to a provider."""
    async with transaction(rt) as tx:
        s = tx.session
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        return await do_system_line(tx, conv, text, dict(details), sender_agent_id=who.agent_id)


async def check_retry_message(rt: Runtime, who: Principal, message_id: int) -> Message:
    """Queue a failed outbound message again, after the same policy checks as a new reply
    (a window that closed since then refuses the retry with the same sentence)."""
    async with transaction(rt) as tx:
        s = tx.session
        message = await require_own(s, who, Message, message_id, "message")
        conv = require_conversation(who, await s.get(Conversation, message.conversation_id))
        delivery = await s.scalar(select(Delivery).where(Delivery.message_id == message.id))
        if (
            message.direction != Direction.OUT
            or message.status != MessageStatus.FAILED
            or delivery is None
        ):
            raise InvalidInput("only a failed outbound message can be retried")
        if (delivery.last_error or "").startswith(WITHDRAWN_PREFIX):
            # Withdrawn on purpose, never a send that failed: a cancelled campaign's message
            # (`campaign_recipients.withdraw`) or one a fallback channel replaced
            # (`delivery.fallback`). Sending it now is what the withdrawal prevented.
            raise Conflict(
                f"This message was withdrawn and is not sent again ({delivery.last_error})",
                code="withdrawn",
            )
        route = await gate.choose_route(tx, conv, message.channel_id)
        now = utcnow()
        # The decision a new message gets: Meta's Human Agent tag only for a person's message,
        # and the tag the send needs now.
        tag = await gate.check_send(
            s,
            conv,
            route,
            MessageKind(message.kind),
            message.body,
            person=message.sender_agent_id is not None,
            now=now,
        )
        extra = dict(message.extra or {})
        if tag and not extra.get("tag"):
            message.extra = {**extra, "tag": tag}
        elif extra.get("tag") == "HUMAN_AGENT" and tag is None:
            # The window opened again since: a plain reply, as `check_send_reply` sends it.
            message.extra = {k: v for k, v in extra.items() if k != "tag"}
        delivery.state = DeliveryState.PENDING
        delivery.attempts = 0
        delivery.next_attempt_at = now
        delivery.last_error = None
        delivery.lease_until = None
        delivery.claimed_by = None
        delivery.updated_at = now
        message.status = MessageStatus.QUEUED
        message.error_code = None
        message.error_reason = None
        message.updated_at = now
        await s.flush()
        tx.emit_for(live_events.MESSAGE_UPDATED(message_dict(message)), conv)
        tx.wake_after_commit(Queue.DELIVERY)
        return message
