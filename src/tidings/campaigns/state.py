"""Campaign and recipient states, skip reasons, and how a recipient follows its message."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import bindparam, or_, select, update

from tidings.actions.base import Tx
from tidings.domain.enums import MessageStatus
from tidings.runtime import Runtime
from tidings.storage.models import CampaignRecipient, Message, table_of
from tidings.storage.types import utcnow


class CampaignState(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class RecipientState(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    SKIPPED = "skipped"


class SkipReason(StrEnum):
    OPTED_OUT = "opted_out"
    NO_CHANNEL = "no_reachable_channel"
    INVALID_NUMBER = "invalid_number"
    WINDOW_CLOSED = "window_closed_no_template"
    DUPLICATE = "duplicate_in_audience"
    CANCELLED = "campaign_cancelled"
    POLICY = "policy_refused"


# Recipients still moving: their state follows their message's status.
IN_FLIGHT = (RecipientState.QUEUED, RecipientState.SENT, RecipientState.DELIVERED)
FINAL = (RecipientState.READ, RecipientState.FAILED, RecipientState.SKIPPED)
_FOLLOWS = {
    MessageStatus.QUEUED: RecipientState.QUEUED,
    MessageStatus.SENT: RecipientState.SENT,
    MessageStatus.DELIVERED: RecipientState.DELIVERED,
    MessageStatus.READ: RecipientState.READ,
    MessageStatus.FAILED: RecipientState.FAILED,
}


def recipient_state_for(status: str) -> RecipientState | None:
    try:
        return _FOLLOWS.get(MessageStatus(status))
    except ValueError:
        return None


async def on_message_status(tx: Tx, message: Message) -> None:
    """Hook for the status path (`do_apply_status`; the delivery worker's `do_record_sent` and
    `do_record_failures` call `on_messages_status`): the recipient whose current message this
    is takes the message's status. (Progress events go out from the
    fan-out loop, at most once a second per campaign, not once per receipt.)

    A recipient's current message is its fallback message once one was sent, else the first.
    Cheap for messages of no campaign: one indexed lookup, done only for outbound messages."""
    await on_messages_status(tx, [message])


class StatusOf(Protocol):
    """What the recipient hook reads of a message: an ORM `Message`, or the delivery worker's
    view of one it recorded without loading it into the ORM."""

    @property
    def id(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def extra(self) -> dict[str, Any]: ...
    @property
    def error_reason(self) -> str | None: ...


async def on_messages_status(tx: Tx, messages: Sequence[StatusOf]) -> None:
    """`on_message_status` for many messages with one lookup (the delivery worker's groups)."""
    moved = {
        m.id: m
        for m in messages
        if (m.extra or {}).get("campaign") and recipient_state_for(m.status) is not None
    }
    if not moved:
        return
    ids = list(moved)
    rows = (
        await tx.session.execute(
            select(
                CampaignRecipient.id,
                CampaignRecipient.state,
                CampaignRecipient.reason,
                CampaignRecipient.message_id,
                CampaignRecipient.fallback_message_id,
            ).where(
                # Which of the two is current is decided below: a `fallback_message_id IS
                # NULL` here would make SQLite walk that index (nearly every row) instead.
                or_(
                    CampaignRecipient.fallback_message_id.in_(ids),
                    CampaignRecipient.message_id.in_(ids),
                )
            )
        )
    ).all()
    now = utcnow()
    moving: dict[RecipientState, list[int]] = {}
    failures: list[dict[str, Any]] = []
    for r in rows:
        current = r.fallback_message_id if r.fallback_message_id is not None else r.message_id
        message = moved.get(current) if current is not None else None
        if message is None:
            continue
        new = recipient_state_for(message.status)
        if new is None or r.state == new or r.state == RecipientState.SKIPPED:
            continue
        if new == RecipientState.FAILED:
            failures.append(
                {
                    "b_id": r.id,
                    "b_reason": r.reason or "send_failed",
                    "b_detail": message.error_reason,
                }
            )
        else:
            moving.setdefault(new, []).append(r.id)
    # Core statements, no objects (the delivery worker's groups): one UPDATE per new state,
    # and the failures, each with its reason, in one executemany.
    t = table_of(CampaignRecipient)
    for state, ids in moving.items():
        await tx.session.execute(
            update(t).where(t.c.id.in_(ids)).values(state=state, updated_at=now)
        )
    if failures:
        await tx.session.execute(
            update(t)
            .where(t.c.id == bindparam("b_id"))
            .values(
                state=RecipientState.FAILED,
                reason=bindparam("b_reason"),
                detail=bindparam("b_detail"),
                updated_at=now,
            ),
            failures,
        )


async def reconcile(rt: Runtime, limit: int = 500) -> int:
    """Catch up recipients whose message moved on without the hook seeing it (a status that
    arrived through a path without the hook, or before it was wired). Returns rows changed.

    A safety net, not the path statuses take: it scans every in-flight recipient of every
    campaign, so it reads on a read connection and takes the write lock only when it found
    something (the fan-out loop runs it every RECONCILE_SECONDS)."""
    current = CampaignRecipient.fallback_message_id
    found: list[tuple[int, str]] = []
    async with rt.db.read() as s:
        for column in (current, CampaignRecipient.message_id):
            cond = (
                current.isnot(None) if column is current else current.is_(None)
            )  # which message is current
            rows = (
                await s.execute(
                    select(CampaignRecipient.id, Message.status)
                    .join(Message, Message.id == column)
                    .where(
                        CampaignRecipient.state.in_(IN_FLIGHT),
                        cond,
                        Message.status != CampaignRecipient.state,
                    )
                    .limit(limit)
                )
            ).all()
            found += [(rid, status) for rid, status in rows]
    changes = [(rid, new) for rid, status in found if (new := recipient_state_for(status))]
    if not changes:
        return 0
    async with rt.db.write() as s:
        for rid, new in changes:
            values: dict[str, object] = {"state": new, "updated_at": utcnow()}
            if new == RecipientState.FAILED:
                values["reason"] = "send_failed"
            # Only if it is still in flight: the hook may have moved it meanwhile.
            await s.execute(
                update(CampaignRecipient)
                .where(CampaignRecipient.id == rid, CampaignRecipient.state.in_(IN_FLIGHT))
                .values(**values)
            )
    return len(changes)
