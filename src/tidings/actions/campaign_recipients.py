"""The writes that keep a campaign and its recipients in step: the audience snapshot's rows, the
fan-out's moves, a recipient following its message's status (the status path's hook, and a
catch-up for what it missed), pause, resume and cancel on the campaign's messages still in the
outbox, and the campaign starting and completing. The fan-out (`campaigns/fanout.py`) and the
audience (`campaigns/audience.py`) decide; the rows are written here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, bindparam, func, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.actions.base import Tx
from tidings.domain.campaigns import (
    IN_FLIGHT,
    CampaignState,
    RecipientState,
    SkipReason,
    recipient_state_for,
)
from tidings.domain.enums import DeliveryState, MessageStatus, Queue
from tidings.runtime import Runtime
from tidings.storage.models import (
    Campaign,
    CampaignRecipient,
    Delivery,
    FallbackTimer,
    Message,
    table_of,
)
from tidings.storage.types import utcnow


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
    """Hook for the one status path (`actions/statuses.do_apply_statuses`, a batch): each
    recipient whose current message moved takes the message's status, with one lookup for the
    batch. A recipient's current message is its fallback message once one was sent, else the
    first. (Progress events go out from the fan-out loop, at most once a second per campaign.)"""
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
    await _set_outcome(tx, RecipientState.FAILED, failures, now)


async def _update_each(tx: Tx, rows: Sequence[dict[str, object]], **values: object) -> None:
    """One executemany UPDATE of the recipients `rows` name (`b_id`) with `values`, where a
    `bindparam("b_x")` takes each row's own `b_x`."""
    if rows:
        t = table_of(CampaignRecipient)
        await tx.session.execute(update(t).where(t.c.id == bindparam("b_id")).values(values), rows)


async def _set_outcome(
    tx: Tx, state: RecipientState, rows: list[dict[str, object]], now: datetime
) -> None:
    """Each `{"b_id", "b_reason", "b_detail"}` recipient ends in `state` with its reason."""
    await _update_each(
        tx,
        rows,
        state=state,
        reason=bindparam("b_reason"),
        detail=bindparam("b_detail"),
        updated_at=now,
    )


# --- the audience snapshot (`campaigns/audience.py` picks who) -----------------------------


async def do_add_contacts(tx: Tx, campaign: Campaign, contact_ids: list[int], now: datetime) -> int:
    """The contacts join the campaign as `pending` recipients, each once (a contact already in
    is left alone). Returns how many joined."""
    result = await tx.session.execute(
        tx.rt.db.insert(CampaignRecipient)
        .values(
            [
                {
                    "workspace_id": campaign.workspace_id,
                    "campaign_id": campaign.id,
                    "contact_id": cid,
                    "variables": {},
                    "state": RecipientState.PENDING,
                    "created_at": now,
                    "updated_at": now,
                }
                for cid in contact_ids
            ]
        )
        .on_conflict_do_nothing(index_elements=["campaign_id", "contact_id"])
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def do_add_rows(tx: Tx, rows: list[dict[str, Any]]) -> None:
    """A CSV upload's recipients, every column given: `pending`, or `skipped` with the reason
    the row could not be used (kept, so the report names every row of the file)."""
    await tx.session.execute(tx.rt.db.insert(CampaignRecipient), rows)


# --- the campaign's own state, as the fan-out finds it -------------------------------------


def due_to_start(now: datetime) -> ColumnElement[bool]:
    """Scheduled campaigns whose time has come."""
    return (Campaign.state == CampaignState.SCHEDULED) & (Campaign.scheduled_at <= now)


async def do_start_due(tx: Tx, now: datetime) -> None:
    await tx.session.execute(
        update(Campaign)
        .where(due_to_start(now))
        .values(state=CampaignState.RUNNING, updated_at=utcnow())
    )


def do_complete(campaign: Campaign) -> None:
    """Every recipient reached a final outcome of the send stage (`fanout._maybe_complete`)."""
    campaign.state = CampaignState.COMPLETED
    campaign.finished_at = campaign.updated_at = utcnow()


# --- the fan-out's moves (`campaigns/fanout.step` decides them) -----------------------------


async def do_defer(tx: Tx, later: list[dict[str, object]], now: datetime) -> None:
    """Quiet hours: each `{"b_id", "b_not_before"}` recipient waits until its time."""
    await _update_each(tx, later, not_before=bindparam("b_not_before"), updated_at=now)


async def do_skip(tx: Tx, skipped: list[dict[str, object]], now: datetime) -> None:
    """Each `{"b_id", "b_reason", "b_detail"}` recipient is skipped with its reason."""
    await _set_outcome(tx, RecipientState.SKIPPED, skipped, now)


async def do_mark_queued(tx: Tx, queued: list[dict[str, object]]) -> None:
    """Each `{"b_id", "b_channel_id", "b_channel_reason", "b_conversation_id",
    "b_message_id"}` recipient is `queued` with the message just queued for it (in the same
    transaction as the message, so a crash leaves both or neither)."""
    now = utcnow()
    await _update_each(
        tx,
        queued,
        state=RecipientState.QUEUED,
        reason=None,
        channel_id=bindparam("b_channel_id"),
        channel_reason=bindparam("b_channel_reason"),
        conversation_id=bindparam("b_conversation_id"),
        message_id=bindparam("b_message_id"),
        queued_at=now,
        updated_at=now,
    )


async def do_follow_fallback(
    tx: Tx, recipient: CampaignRecipient, message: Message, channel_id: int
) -> None:
    """The recipient's current message is now its fallback message, queued on `channel_id`."""
    recipient.fallback_message_id = message.id
    recipient.channel_id = channel_id
    recipient.state = RecipientState.QUEUED
    recipient.updated_at = utcnow()


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


# --- pause: the campaign's queued messages in the outbox -------------------------------------


def _queued_messages(campaign_id: int) -> Any:
    """The current messages of a campaign's recipients still `queued` (their first message, or
    their fallback message once one was queued): the ones whose delivery may not have left."""
    t = table_of(CampaignRecipient)
    mine = (t.c.campaign_id == campaign_id) & (t.c.state == RecipientState.QUEUED)
    return union_all(
        select(t.c.message_id.label("id")).where(mine, t.c.message_id.isnot(None)),
        select(t.c.fallback_message_id).where(mine, t.c.fallback_message_id.isnot(None)),
    )


async def hold(tx: Tx, campaign_id: int) -> int:
    """Pause: every queued delivery of the campaign not yet claimed becomes `held`, which the
    delivery worker's claim never takes (one UPDATE; the claim itself is unchanged). Returns
    how many were held."""
    d = table_of(Delivery)
    result = await tx.session.execute(
        update(d)
        .where(
            d.c.state == DeliveryState.PENDING, d.c.message_id.in_(_queued_messages(campaign_id))
        )
        .values(state=DeliveryState.HELD, updated_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def release(tx: Tx, campaign_id: int) -> int:
    """Resume: the campaign's held deliveries go back to the queue, due now."""
    d = table_of(Delivery)
    now = utcnow()
    result = await tx.session.execute(
        update(d)
        .where(d.c.state == DeliveryState.HELD, d.c.message_id.in_(_queued_messages(campaign_id)))
        .values(state=DeliveryState.PENDING, next_attempt_at=now, updated_at=now)
    )
    tx.wake_after_commit(Queue.DELIVERY)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


WITHDRAWN = "Withdrawn: the campaign was cancelled before this message was sent."


async def withdraw(tx: Tx, campaign_id: int) -> int:
    """Cancel: the campaign's deliveries that never left (pending or held, not claimed) fail
    as withdrawn, their messages with them, their fallback timers retire, and their recipients
    are skipped as cancelled. Returns how many were withdrawn."""
    s = tx.session
    d, m, t = table_of(Delivery), table_of(Message), table_of(CampaignRecipient)
    ids = list(
        (
            await s.scalars(
                select(d.c.message_id).where(
                    d.c.state.in_((DeliveryState.PENDING, DeliveryState.HELD)),
                    d.c.message_id.in_(_queued_messages(campaign_id)),
                )
            )
        ).all()
    )
    if not ids:
        return 0
    now = utcnow()
    await s.execute(
        update(d)
        .where(d.c.message_id.in_(ids), d.c.state.in_((DeliveryState.PENDING, DeliveryState.HELD)))
        .values(state=DeliveryState.FAILED, last_error=WITHDRAWN, lease_until=None, updated_at=now)
    )
    await s.execute(
        update(m)
        .where(m.c.id.in_(ids))
        .values(status=MessageStatus.FAILED, error_reason=WITHDRAWN, updated_at=now)
    )
    timers = table_of(FallbackTimer)
    await s.execute(
        update(timers)
        .where(timers.c.message_id.in_(ids), timers.c.state == "waiting")
        .values(state="not_needed", outcome="campaign cancelled", updated_at=now)
    )
    await s.execute(
        update(t)
        .where(
            t.c.campaign_id == campaign_id,
            t.c.state == RecipientState.QUEUED,
            or_(t.c.message_id.in_(ids), t.c.fallback_message_id.in_(ids)),
        )
        .values(
            state=RecipientState.SKIPPED,
            reason=SkipReason.CANCELLED,
            detail="The campaign was cancelled before this recipient's message was sent.",
            updated_at=now,
        )
    )
    return len(ids)


async def outbox(s: AsyncSession, campaign_id: int) -> dict[str, int]:
    """Where the campaign's queued messages stand in the outbox: `held` (paused, will not go
    until resumed), `waiting` (queued for the delivery worker) and `in_flight` (claimed by a
    worker: may already be with the provider)."""
    d = table_of(Delivery)
    rows = await s.execute(
        select(d.c.state, func.count())
        .where(d.c.message_id.in_(_queued_messages(campaign_id)))
        .group_by(d.c.state)
    )
    by = {str(state): int(n) for state, n in rows}
    return {
        "held": by.get(DeliveryState.HELD, 0),
        "waiting": by.get(DeliveryState.PENDING, 0),
        "in_flight": by.get(DeliveryState.SENDING, 0),
    }
