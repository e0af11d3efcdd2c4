"""SLA timers: first-response and next-response targets per inbox, optionally per priority.

One timer runs per conversation at a time, kept on the conversation row:

- `sla_target`: `first_response` until an agent first replies, then `next_response`;
- `sla_due_at`: when that target falls due;
- `sla_state`: `running`, then `breached` once the due time passed without an agent reply;
  None when nothing is due (answered, resolved, or no target configured).

A customer message starts the timer when none runs (the earliest unanswered message counts);
an agent's reply (a text or template with a sender agent; not notes, automations or CSAT
questions) stops it; resolving stops it. Time counts from when we received the message, in
calendar time (business hours do not pause it). A priority change moves a running timer to
the new priority's target, counted from the same start.

A missed target becomes one `sla_breach` row per (conversation, target, due_at), written by the
sweep in `tidings.workers.assignment` as soon as the due time passes (or by the late reply
itself, if it comes before the sweep). `responded_at` is filled in when the late reply comes;
it stays null for a conversation resolved without one. Reports read `sla_breach`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from tidings.access import Principal, inbox_filter, require_admin, require_inbox
from tidings.actions.base import Tx, inbox_settings, settings_changed, transaction
from tidings.domain import live_events
from tidings.domain.enums import ConversationStatus, Queue
from tidings.domain.errors import InvalidInput
from tidings.runtime import Runtime
from tidings.serialize import conversation_dict, ts
from tidings.storage.models import (
    Conversation,
    ConversationLabel,
    InboxSla,
    Label,
    SlaBreach,
)
from tidings.storage.types import utcnow

FIRST = "first_response"
NEXT = "next_response"
RUNNING = "running"
BREACHED = "breached"
PRIORITIES = ("none", "low", "medium", "high", "urgent")
MAX_SECONDS = 90 * 24 * 3600
SWEEP_BATCH = 200


# --- settings -------------------------------------------------------------------------------


def settings_dict(inbox_id: int, row: InboxSla | None) -> dict[str, Any]:
    return {
        "inbox_id": inbox_id,
        "first_response_seconds": row.first_response_seconds if row else None,
        "next_response_seconds": row.next_response_seconds if row else None,
        "by_priority": dict(row.by_priority or {}) if row else {},
    }


def _seconds(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SECONDS:
        raise InvalidInput(f"{field}: whole seconds from 1 to {MAX_SECONDS}, or null")
    return value


def _by_priority(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for priority, targets in value.items():
        if priority not in PRIORITIES:
            raise InvalidInput(f"by_priority: priorities are {', '.join(PRIORITIES)}")
        if not isinstance(targets, dict) or set(targets) - {
            "first_response_seconds",
            "next_response_seconds",
        }:
            raise InvalidInput(
                f"by_priority.{priority}: an object with first_response_seconds and/or "
                "next_response_seconds"
            )
        clean = {
            k: _seconds(v, f"by_priority.{priority}.{k}")
            for k, v in targets.items()
            if v is not None
        }
        if clean:
            out[priority] = clean
    return out


async def check_get_settings(rt: Runtime, who: Principal, inbox_id: int) -> dict[str, Any]:
    async with rt.db.read() as s:
        await require_inbox(s, who, inbox_id)
        return settings_dict(inbox_id, await s.get(InboxSla, inbox_id))


async def check_set_settings(
    rt: Runtime, who: Principal, inbox_id: int, fields: dict[str, Any]
) -> dict[str, Any]:
    """Set any of first_response_seconds, next_response_seconds (null: no target) and
    by_priority (replaces the overrides). Applies to timers started from now on."""
    require_admin(who)
    async with transaction(rt) as tx:
        row = await inbox_settings(tx, who, InboxSla, inbox_id, by_priority={}, updated_at=utcnow())
        if "first_response_seconds" in fields:
            row.first_response_seconds = _seconds(
                fields["first_response_seconds"], "first_response_seconds"
            )
        if "next_response_seconds" in fields:
            row.next_response_seconds = _seconds(
                fields["next_response_seconds"], "next_response_seconds"
            )
        if fields.get("by_priority") is not None:
            row.by_priority = _by_priority(fields["by_priority"])
        row.updated_at = utcnow()
        await tx.session.flush()
        settings_changed(tx, who, "sla")
        return settings_dict(inbox_id, row)


def _target(row: InboxSla | None, priority: str | None, target: str) -> int | None:
    if row is None:
        return None
    key = f"{target}_seconds"
    override = (row.by_priority or {}).get(priority or "none") or {}
    value = override.get(key, getattr(row, key))
    return int(value) if value is not None else None


async def _settings(s: Any, inbox_id: int) -> InboxSla | None:
    # Memoised per session: an ingest batch asks once per inbox, not once per message (a
    # missing row, the common case, is not kept by the identity map).
    memo: dict[int, InboxSla | None] = s.info.setdefault("inbox_sla", {})
    if inbox_id not in memo:
        memo[inbox_id] = await s.get(InboxSla, inbox_id)
    return memo[inbox_id]


# --- the timer --------------------------------------------------------------------------------


async def on_customer_message(tx: Tx, conv: Conversation) -> None:
    """Start the timer for an unanswered customer message, unless one already runs."""
    if conv.sla_state is not None or conv.status == ConversationStatus.RESOLVED:
        return
    target = FIRST if conv.first_response_at is None else NEXT
    seconds = _target(await _settings(tx.session, conv.inbox_id), conv.priority, target)
    if seconds is None:
        return
    conv.sla_target = target
    conv.sla_due_at = utcnow() + timedelta(seconds=seconds)
    conv.sla_state = RUNNING
    # The sweep sleeps until the earliest due time: tell it about this one.
    tx.wake_after_commit(Queue.ASSIGNMENT)


async def _record_breach(tx: Tx, conv: Conversation, responded_at: datetime | None) -> None:
    assert conv.sla_target is not None and conv.sla_due_at is not None
    await tx.session.execute(
        tx.rt.db.insert(SlaBreach)
        .values(
            workspace_id=conv.workspace_id,
            inbox_id=conv.inbox_id,
            conversation_id=conv.id,
            target=conv.sla_target,
            priority=conv.priority or "none",
            assignee_id=conv.assignee_id,
            due_at=conv.sla_due_at,
            detected_at=utcnow(),
            responded_at=responded_at,
        )
        .on_conflict_do_nothing(index_elements=["conversation_id", "target", "due_at"])
    )


def on_resolved(conv: Conversation) -> None:
    """Stop the timer (also when an agent answers, below)."""
    conv.sla_target = None
    conv.sla_due_at = None
    conv.sla_state = None


async def on_agent_reply(tx: Tx, conv: Conversation) -> None:
    """An agent answered: stop the timer (recording the breach if the reply is late)."""
    now = utcnow()
    if conv.first_response_at is None:
        conv.first_response_at = now
    if conv.sla_state is None:
        return
    if conv.sla_state == RUNNING and conv.sla_due_at is not None and conv.sla_due_at <= now:
        await _record_breach(tx, conv, now)
    if conv.sla_state is not None:
        await tx.session.execute(
            update(SlaBreach)
            .where(SlaBreach.conversation_id == conv.id, SlaBreach.responded_at.is_(None))
            .values(responded_at=now)
        )
    on_resolved(conv)


async def on_priority_change(tx: Tx, conv: Conversation, before: str | None) -> None:
    """A running timer follows the new priority's target, counted from the same start."""
    if conv.sla_state != RUNNING or conv.sla_due_at is None or conv.sla_target is None:
        return
    if (before or "none") == (conv.priority or "none"):
        return
    row = await _settings(tx.session, conv.inbox_id)
    old, new = _target(row, before, conv.sla_target), _target(row, conv.priority, conv.sla_target)
    if old is None or new is None:
        return
    conv.sla_due_at = conv.sla_due_at + timedelta(seconds=new - old)
    tx.wake_after_commit(Queue.ASSIGNMENT)


async def sweep(rt: Runtime, limit: int = SWEEP_BATCH) -> int:
    """Record the breach of every running timer that is past due. Returns how many."""
    now = utcnow()
    due = (Conversation.sla_state == RUNNING) & (Conversation.sla_due_at <= now)
    if not await rt.db.has_rows(select(Conversation.id).where(due)):
        return 0
    async with transaction(rt) as tx:
        s = tx.session
        rows = await rt.db.claim(s, Conversation, due, (Conversation.sla_due_at,), limit)
        for conv in rows:
            await _record_breach(tx, conv, None)
            conv.sla_state = BREACHED
            labels = (
                await s.scalars(
                    select(Label.name)
                    .join(ConversationLabel, ConversationLabel.label_id == Label.id)
                    .where(ConversationLabel.conversation_id == conv.id)
                )
            ).all()
            tx.emit_for(
                live_events.CONVERSATION_UPDATED(conversation_dict(conv, list(labels))), conv
            )
        return len(rows)


async def next_due(rt: Runtime) -> datetime | None:
    async with rt.db.read() as s:
        due: datetime | None = await s.scalar(
            select(func.min(Conversation.sla_due_at)).where(Conversation.sla_state == RUNNING)
        )
    return due


async def breaches(
    rt: Runtime,
    who: Principal,
    *,
    since: datetime | None,
    until: datetime | None,
    inbox_id: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    q = select(SlaBreach).where(
        SlaBreach.workspace_id == who.workspace_id, inbox_filter(who, SlaBreach.inbox_id)
    )
    if inbox_id is not None:
        q = q.where(SlaBreach.inbox_id == inbox_id)
    if since is not None:
        q = q.where(SlaBreach.due_at >= since)
    if until is not None:
        q = q.where(SlaBreach.due_at < until)
    async with rt.db.read() as s:
        rows = (await s.scalars(q.order_by(SlaBreach.due_at.desc()).limit(limit))).all()
    return [
        {
            "id": b.id,
            "conversation_id": b.conversation_id,
            "inbox_id": b.inbox_id,
            "target": b.target,
            "priority": b.priority,
            "assignee_id": b.assignee_id,
            "due_at": ts(b.due_at),
            "detected_at": ts(b.detected_at),
            "responded_at": ts(b.responded_at),
        }
        for b in rows
    ]
