"""Durable timers for the timed rule events (rows, like `FallbackTimer`, so they survive
restarts; moving a timer out of `waiting` in the transaction that writes its event makes it
fire at most once).

- no_reply (N minutes): armed when a customer message arrives and no timer of the rule is
  already waiting on the conversation (the customer has been waiting since the earlier
  message). When due it fires unless an agent replied after the anchor message; if an agent
  replied but the customer wrote again since, it re-arms on that newer message. Only a
  person's reply counts (an outbound message with a sending agent; notes, system events and
  automated messages do not).
- window.closing (N minutes): armed per customer message on a channel with a service window,
  due N minutes before that window closes; when due it fires only if no newer customer
  message has moved the window (that message armed its own timer).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from tidings.actions.base import Tx, transaction
from tidings.automation.customer import FROM_CUSTOMER
from tidings.domain.enums import Direction, MessageKind, Queue
from tidings.runtime import Runtime
from tidings.storage.models import (
    AutomationEvent,
    AutomationRule,
    AutomationTimer,
    Conversation,
    ConversationChannel,
    Message,
)
from tidings.storage.types import utcnow

BATCH = 50


class TimerState:
    WAITING = "waiting"
    FIRED = "fired"
    NOT_NEEDED = "not_needed"


def _window_anchor(channel_id: int, last_inbound_at: datetime) -> str:
    return f"w{channel_id}:{last_inbound_at.isoformat()}"[:64]


async def _insert(tx: Tx, rule: AutomationRule, conv_id: int, anchor: str, due: object) -> None:
    now = utcnow()
    await tx.session.execute(
        tx.rt.db.insert(AutomationTimer)
        .values(
            workspace_id=rule.workspace_id,
            rule_id=rule.id,
            conversation_id=conv_id,
            event=rule.event,
            anchor=anchor,
            due_at=due,
            state=TimerState.WAITING,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["rule_id", "conversation_id", "anchor"])
    )


async def arm(rt: Runtime, conv: Conversation, message: Message) -> int:
    """Arm the workspace's timed rules for one customer message (idempotent). Returns how many
    timers were considered."""
    async with transaction(rt) as tx:
        s = tx.session
        rules = (
            await s.scalars(
                select(AutomationRule).where(
                    AutomationRule.workspace_id == conv.workspace_id,
                    AutomationRule.active.is_(True),
                    AutomationRule.event.in_(("no_reply", "window.closing")),
                )
            )
        ).all()
        now = utcnow()
        for rule in rules:
            minutes = float((rule.event_params or {}).get("minutes") or 0)
            if rule.event == "no_reply":
                waiting = await s.scalar(
                    select(AutomationTimer.id).where(
                        AutomationTimer.rule_id == rule.id,
                        AutomationTimer.conversation_id == conv.id,
                        AutomationTimer.state == TimerState.WAITING,
                    )
                )
                if waiting is None:
                    due = message.created_at + timedelta(minutes=minutes)
                    await _insert(tx, rule, conv.id, f"m{message.id}", due)
            elif message.channel_id is not None:
                channel = await rt.channels.get(message.channel_id)
                hours = channel.adapter.capabilities.service_window_hours if channel else None
                window = await s.get(ConversationChannel, (conv.id, message.channel_id))
                if hours is None or window is None or window.last_inbound_at is None:
                    continue
                closes = window.last_inbound_at + timedelta(hours=hours)
                if closes <= now:
                    continue
                due = max(now, closes - timedelta(minutes=minutes))
                anchor = _window_anchor(message.channel_id, window.last_inbound_at)
                await _insert(tx, rule, conv.id, anchor, due)
        return len(rules)


async def _agent_reply_after(tx: Tx, conv_id: int, after_id: int) -> Message | None:
    return await tx.session.scalar(
        select(Message)
        .where(
            Message.conversation_id == conv_id,
            Message.id > after_id,
            Message.direction == Direction.OUT,
            Message.sender_agent_id.is_not(None),
            Message.kind.not_in((MessageKind.NOTE, MessageKind.SYSTEM)),
        )
        .order_by(Message.id.desc())
        .limit(1)
    )


async def _handle(tx: Tx, timer: AutomationTimer) -> bool:
    """Decide one due timer. Returns whether it fired (wrote an event)."""
    s = tx.session
    timer.updated_at = utcnow()
    rule = await s.get(AutomationRule, timer.rule_id)
    conv = await s.get(Conversation, timer.conversation_id)
    if rule is None or not rule.active or conv is None or conv.status == "resolved":
        timer.state = TimerState.NOT_NEEDED
        return False
    message_id: int | None = None
    if timer.event == "no_reply":
        message_id = int(timer.anchor[1:])
        reply = await _agent_reply_after(tx, conv.id, message_id)
        if reply is not None:
            timer.state = TimerState.NOT_NEEDED
            newer = await s.scalar(
                select(Message)
                .where(
                    Message.conversation_id == conv.id,
                    FROM_CUSTOMER,  # not a provider's notice or a consent line
                    Message.id > reply.id,
                )
                .order_by(Message.id)
                .limit(1)
            )
            if newer is not None:
                minutes = float((rule.event_params or {}).get("minutes") or 0)
                await _insert(
                    tx, rule, conv.id, f"m{newer.id}", newer.created_at + timedelta(minutes=minutes)
                )
            return False
    else:
        channel_id = int(timer.anchor[1:].partition(":")[0])
        window = await s.get(ConversationChannel, (conv.id, channel_id))
        if (
            window is None
            or window.last_inbound_at is None
            or _window_anchor(channel_id, window.last_inbound_at) != timer.anchor
        ):
            timer.state = TimerState.NOT_NEEDED
            return False
    now = utcnow()
    s.add(
        AutomationEvent(
            workspace_id=conv.workspace_id,
            event=timer.event,
            conversation_id=conv.id,
            message_id=message_id,
            rule_id=rule.id,
            state="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    timer.state = TimerState.FIRED
    return True


async def fire_due(rt: Runtime, limit: int = BATCH) -> int:
    now = utcnow()
    due = (AutomationTimer.state == TimerState.WAITING) & (AutomationTimer.due_at <= now)
    if not await rt.db.has_rows(select(AutomationTimer.id).where(due)):
        return 0
    async with transaction(rt) as tx:
        order = (AutomationTimer.due_at, AutomationTimer.id)
        timers = await rt.db.claim(tx.session, AutomationTimer, due, order, limit)
        fired = 0
        for timer in timers:
            fired += await _handle(tx, timer)
        if fired:
            tx.wake_after_commit(Queue.AUTOMATION)
        return len(timers)
