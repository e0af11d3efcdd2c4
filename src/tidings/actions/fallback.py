"""Fallback plans: checked when saved, and armed as a `FallbackTimer` row when a message goes
out (the delivery side, `delivery/fallback.py`, fires the timers). The plan's shape and rules
are in that module's docstring."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Row, select

from tidings.actions.base import Tx, transaction
from tidings.domain.enums import DeliveryState, FallbackState, MessageStatus
from tidings.domain.errors import InvalidInput
from tidings.runtime import Runtime
from tidings.storage.models import (
    Channel,
    Conversation,
    Delivery,
    FallbackTimer,
    Inbox,
    InboxFallback,
    Message,
)
from tidings.storage.types import utcnow

MAX_AFTER_SECONDS = 7 * 24 * 3600


def validate_plan(raw: Any) -> dict[str, Any]:
    """A plan as stored; `{}` (or None) means no fallback."""
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput("fallback: {to_channel_id, after_seconds, on_failed, on_window_closed}")
    unknown = set(raw) - {"to_channel_id", "after_seconds", "on_failed", "on_window_closed"}
    if unknown:
        raise InvalidInput(f"fallback: unknown field(s) {', '.join(sorted(unknown))}")
    to = raw.get("to_channel_id")
    if not isinstance(to, int) or isinstance(to, bool):
        raise InvalidInput("fallback.to_channel_id: the channel to fall back to")
    after = raw.get("after_seconds")
    if after is not None and (
        not isinstance(after, int) or isinstance(after, bool) or not 0 < after <= MAX_AFTER_SECONDS
    ):
        raise InvalidInput(f"fallback.after_seconds: 1..{MAX_AFTER_SECONDS}, or null")
    plan = {
        "to_channel_id": to,
        "after_seconds": after,
        "on_failed": bool(raw.get("on_failed", True)),
        "on_window_closed": bool(raw.get("on_window_closed", False)),
    }
    if after is None and not plan["on_failed"] and not plan["on_window_closed"]:
        raise InvalidInput("fallback: say when — after_seconds, on_failed or on_window_closed")
    return plan


async def arm(
    tx: Tx, message: Message | Row[Any], plan: dict[str, Any], recipient_id: int | None = None
) -> None:
    """Arm `plan` for `message` (its ORM object or row; idempotent: one timer per message)."""
    if not plan or message.channel_id == plan.get("to_channel_id"):
        return
    after = plan.get("after_seconds")
    if after is None and not plan.get("on_failed"):
        return
    now = utcnow()
    await tx.session.execute(
        tx.rt.db.insert(FallbackTimer)
        .values(
            workspace_id=message.workspace_id,
            message_id=message.id,
            to_channel_id=int(plan["to_channel_id"]),
            campaign_recipient_id=recipient_id,
            due_at=now + timedelta(seconds=int(after)) if after else None,
            on_failed=bool(plan.get("on_failed")),
            state=FallbackState.WAITING,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["message_id"])
    )


async def arm_for_reply(tx: Tx, message: Message, conv: Conversation) -> None:
    """Hook for `outbound.do_queue_message`: arm the inbox's plan for an ordinary reply.
    Campaign messages (their own plan) and fallback messages themselves are left alone."""
    extra = message.extra or {}
    if extra.get("campaign") or extra.get("fallback_of"):
        return
    row = await tx.session.get(InboxFallback, conv.inbox_id)
    if row is not None and row.plan:
        await arm(tx, message, row.plan)


async def do_withdraw_original(tx: Tx, original: Message, instead: str) -> None:
    """A fallback replaces `original`: if its delivery never left (pending or held), it fails
    as withdrawn, and the message with it, so the customer does not get both."""
    delivery = await tx.session.scalar(select(Delivery).where(Delivery.message_id == original.id))
    if delivery is not None and delivery.state in (DeliveryState.PENDING, DeliveryState.HELD):
        delivery.state = DeliveryState.FAILED
        delivery.last_error = f"Withdrawn: sent by {instead} instead."
        original.status = MessageStatus.FAILED
        original.error_reason = delivery.last_error
        original.updated_at = utcnow()


async def check_set_inbox_plan(
    rt: Runtime, workspace_id: int, inbox_id: int, raw: Any
) -> dict[str, Any]:
    """Precondition: the caller checked that the agent administers this workspace."""
    plan = validate_plan(raw)
    async with transaction(rt) as tx:
        s = tx.session
        inbox = await s.get(Inbox, inbox_id)
        if inbox is None or inbox.workspace_id != workspace_id:
            raise InvalidInput(f"inbox {inbox_id} not found")
        if plan:
            ch = await s.get(Channel, plan["to_channel_id"])
            if ch is None or ch.workspace_id != workspace_id:
                raise InvalidInput("fallback.to_channel_id: not a channel of this workspace")
        row = await s.get(InboxFallback, inbox_id)
        if row is None:
            row = InboxFallback(inbox_id=inbox_id, workspace_id=workspace_id)
            s.add(row)
        row.plan, row.updated_at = plan, utcnow()
        return plan
