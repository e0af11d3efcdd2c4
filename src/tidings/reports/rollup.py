"""Keeping the report tables current: the rollup job.

Triggers (migration 0008_reports) mark a conversation in `report_dirty` in the same transaction
as any change to it, its messages or its fallback timers, whichever code path made the change.
The job takes a batch of marks and, in one transaction:

1. recomputes each marked conversation from its raw rows (`compute`): its `report_conversation`
   row and its contributions to each UTC day x channel (`report_conversation_day`);
2. adds (new - old contribution) to the `report_daily` rollup;
3. replaces the stored contributions and deletes exactly the marks it read.

Because the rows are recomputed rather than incremented, a replayed webhook, a retried send or
a mark processed twice changes nothing; because marks are deleted in the transaction that
applies them, a crash either applies a batch whole or leaves its marks for the next run. A
change that commits while a batch runs leaves a newer mark, so it is picked up next time.
On PostgreSQL one batch runs at a time across all worker processes (a transaction-scoped
advisory lock); the others skip, so two workers can never subtract the same old contribution.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.automation.hours import hours_for_inbox, open_seconds_between
from tidings.domain.errors import InvalidInput
from tidings.reports.models import (
    MEASURES,
    ReportConversation,
    ReportConversationDay,
    ReportDaily,
    ReportDirty,
    ReportStatusLog,
)
from tidings.runtime import Runtime
from tidings.storage.db import Database, chunks
from tidings.storage.models import Conversation, FallbackTimer, Message

log = logging.getLogger(__name__)

BATCH = 200
IDLE_SECONDS = 1.0
# SQLite (one writer, shared with the ingest loop): a batch recomputes its conversations in
# chunks of RECOMPUTE_CHUNK and stops after SLICE_SECONDS, consuming only the marks of the
# conversations it recomputed; the rest wait for the next batch. A broadcast's thousands of
# status changes otherwise made one batch hold the write lock for seconds, and a customer's
# message waited behind it (docs/benchmarks.md, "Inbound lanes").
RECOMPUTE_CHUNK = 10
SLICE_SECONDS = 0.1
# Marks younger than this wait, so one recompute covers a conversation's burst of changes.
SETTLE_SECONDS = 3.0
# pg_advisory_xact_lock key: "tidings reports" in ASCII, truncated to a bigint.
LOCK_KEY = 0x74696469_6E677372
# Messages that are not conversation traffic: agents' notes and system lines (consent notes…).
NOT_TRAFFIC = ("note", "system")
DIMS = ("workspace_id", "day", "inbox_id", "channel_id", "agent_id", "team_id")

Hours = Callable[[int, datetime, datetime], float]


def _plain_seconds(_inbox_id: int, start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


@dataclass
class Computed:
    stats: dict[str, Any] | None
    # (day, channel_id) -> measures
    days: dict[tuple[date, int], dict[str, Any]] = field(default_factory=dict)


def _bucket(days: dict[tuple[date, int], dict[str, Any]], at: datetime, channel: int) -> Any:
    key = (at.date(), channel)
    b = days.get(key)
    if b is None:
        b = {m: 0 for m in MEASURES}
        b["cost"] = Decimal(0)
        days[key] = b
    return b


def compute(
    conv: Any,
    messages: Sequence[Any],
    status_log: Sequence[Any],
    refused: set[int],
    business_seconds: Hours = _plain_seconds,
) -> Computed:
    """One conversation's report row and per-day contributions, from its raw rows.

    `messages` are in thread order (sent_at, id). Definitions (docs/architecture.md, Reports):
    first response: the first agent reply at or after the first customer message; reply time:
    per conversation, the mean wait from a customer's first unanswered message to the agent's
    answer; resolution: creation to the last move to `resolved`; customer reply: from our first
    unanswered message to the customer's next one, on the channel they answered on.
    """
    if conv is None:
        return Computed(None)
    days: dict[tuple[date, int], dict[str, Any]] = {}
    inbox = conv.inbox_id
    first_in: datetime | None = None
    first_response: datetime | None = None
    waiting_from: datetime | None = None  # first unanswered customer message
    ours_from: datetime | None = None  # first of our messages the customer has not answered
    reply_waits: list[float] = []
    reply_waits_bh: list[float] = []
    channels: list[int] = []
    by_id = {m.id: m for m in messages}
    messages_in = messages_out = failed = fallbacks = 0
    cost = Decimal(0)
    for m in messages:
        if m.kind in NOT_TRAFFIC:
            continue
        channel = m.channel_id or 0
        if m.channel_id and m.channel_id not in channels:
            channels.append(m.channel_id)
        b = _bucket(days, m.sent_at, channel)
        extra = m.extra or {}
        if m.direction == "in":
            messages_in += 1
            b["messages_in"] += 1
            if first_in is None:
                first_in = m.sent_at
            if waiting_from is None:
                waiting_from = m.sent_at
            if ours_from is not None:
                b["customer_replies"] += 1
                b["customer_reply_seconds"] += int((m.sent_at - ours_from).total_seconds())
                ours_from = None
            continue
        messages_out += 1
        b["messages_out"] += 1
        if m.status in ("delivered", "read"):
            b["delivered"] += 1
        if m.status == "read":
            b["read"] += 1
        if m.status == "failed":
            b["failed"] += 1
            failed += 1
        if m.cost_estimate is not None:
            b["cost"] += Decimal(m.cost_estimate)
            cost += Decimal(m.cost_estimate)
        if m.id in refused:
            b["fallbacks_refused"] += 1
        original_id = extra.get("fallback_of")
        if original_id is not None:
            # A fallback re-sends a reply: counted against the channel that could not deliver
            # it, and not as a second answer.
            fallbacks += 1
            original = by_id.get(original_id)
            from_channel = (original.channel_id or 0) if original is not None else 0
            reason = extra.get("fallback_reason")
            key = "fallbacks_failed" if reason == "failed" else "fallbacks_timeout"
            _bucket(days, m.sent_at, from_channel)[key] += 1
            continue
        if ours_from is None:
            ours_from = m.sent_at
        if m.sender_agent_id is None:
            continue
        if first_in is not None and first_response is None:
            first_response = m.sent_at
        if waiting_from is not None:
            reply_waits.append((m.sent_at - waiting_from).total_seconds())
            reply_waits_bh.append(business_seconds(inbox, waiting_from, m.sent_at))
            waiting_from = None
    first_channel = channels[0] if channels else 0
    created = conv.created_at
    # A conversation a campaign send opened is not a customer's new conversation: it counts
    # (new, then resolved) only once the customer answered, new on the day of that answer;
    # unanswered, it is in no conversation count or backlog (the campaign report has its sends
    # and replies).
    traffic = [m for m in messages if m.kind not in NOT_TRAFFIC]
    by_campaign = bool(
        traffic and traffic[0].direction == "out" and (traffic[0].extra or {}).get("campaign")
    )
    answer = next((m for m in traffic if m.direction == "in"), None) if by_campaign else None
    counted = not by_campaign or answer is not None
    if counted:
        new_at = answer.sent_at if answer is not None else created
        _bucket(days, new_at, first_channel)["conversations_new"] += 1
    resolved_at: datetime | None = None
    if conv.status == "resolved":
        resolved_at = next(
            (r.at for r in reversed(status_log) if r.status == "resolved"), conv.updated_at
        )
        if counted:
            _bucket(days, resolved_at, first_channel)["conversations_resolved"] += 1

    def secs(a: datetime | None, b: datetime | None, bh: bool = False) -> int | None:
        if a is None or b is None:
            return None
        return round(business_seconds(inbox, a, b) if bh else max(0.0, (b - a).total_seconds()))

    stats = {
        "conversation_id": conv.id,
        "workspace_id": conv.workspace_id,
        "inbox_id": inbox,
        "contact_id": conv.contact_id,
        "assignee_id": conv.assignee_id,
        "team_id": conv.team_id,
        "status": conv.status,
        "channel_id": first_channel or None,
        "channels": "," + ",".join(str(c) for c in sorted(channels)) + "," if channels else "",
        "channel_count": len(channels),
        "created_at": created,
        "created_day": created.date(),
        "first_inbound_at": first_in,
        "first_response_at": first_response,
        "first_response_seconds": secs(first_in, first_response),
        "first_response_bh_seconds": secs(first_in, first_response, bh=True),
        "reply_count": len(reply_waits),
        "reply_seconds": round(sum(reply_waits) / len(reply_waits)) if reply_waits else None,
        "reply_bh_seconds": (
            round(sum(reply_waits_bh) / len(reply_waits_bh)) if reply_waits_bh else None
        ),
        "resolved_at": resolved_at,
        "resolved_day": resolved_at.date() if resolved_at else None,
        "resolution_seconds": secs(created, resolved_at),
        "resolution_bh_seconds": secs(created, resolved_at, bh=True),
        "messages_in": messages_in,
        "messages_out": messages_out,
        "failed": failed,
        "fallbacks": fallbacks,
        "cost": cost,
        "waiting_since": waiting_from if conv.status == "open" else None,
    }
    return Computed(stats, days)


async def _business_hours(s: AsyncSession, inbox_ids: Iterable[int]) -> Hours:
    """Business-time seconds per inbox, from the inbox's hours (tidings.automation.hours);
    plain elapsed time for an inbox without hours."""
    table: dict[int, Any] = {}
    for inbox_id in set(inbox_ids):
        try:
            table[inbox_id] = await hours_for_inbox(s, inbox_id)
        except InvalidInput:
            # Stored hours that no longer validate must not stall the rollup: plain time.
            log.warning("inbox %s: business hours do not parse; reporting plain time", inbox_id)
            table[inbox_id] = None

    def seconds(inbox_id: int, start: datetime, end: datetime) -> float:
        return open_seconds_between(table.get(inbox_id), start, end)

    return seconds


async def recompute(s: AsyncSession, db: Database, conversation_ids: Sequence[int]) -> None:
    """Bring the report rows of these conversations in line with their raw rows."""
    ids = sorted(set(conversation_ids))
    if not ids:
        return
    convs = {
        c.id: c
        for c in (
            await s.execute(
                select(
                    Conversation.id,
                    Conversation.workspace_id,
                    Conversation.inbox_id,
                    Conversation.contact_id,
                    Conversation.assignee_id,
                    Conversation.team_id,
                    Conversation.status,
                    Conversation.created_at,
                    Conversation.updated_at,
                ).where(Conversation.id.in_(ids))
            )
        ).all()
    }
    by_conv: dict[int, list[Any]] = defaultdict(list)
    for m in await s.execute(
        select(
            Message.id,
            Message.conversation_id,
            Message.direction,
            Message.kind,
            Message.status,
            Message.channel_id,
            Message.sender_agent_id,
            Message.sent_at,
            Message.cost_estimate,
            Message.extra,
        )
        .where(Message.conversation_id.in_(ids))
        .order_by(Message.conversation_id, Message.sent_at, Message.id)
    ):
        by_conv[m.conversation_id].append(m)
    refused = set(
        (
            await s.scalars(
                select(FallbackTimer.message_id)
                .join(Message, Message.id == FallbackTimer.message_id)
                .where(Message.conversation_id.in_(ids), FallbackTimer.state == "refused")
            )
        ).all()
    )
    logs: dict[int, list[Any]] = defaultdict(list)
    for r in await s.execute(
        select(ReportStatusLog.conversation_id, ReportStatusLog.status, ReportStatusLog.at)
        .where(ReportStatusLog.conversation_id.in_(ids))
        .order_by(ReportStatusLog.conversation_id, ReportStatusLog.id)
    ):
        logs[r.conversation_id].append(r)
    hours = await _business_hours(s, (c.inbox_id for c in convs.values()))

    # The difference to apply to the rollup, keyed by its dimensions.
    delta: dict[tuple[Any, ...], dict[str, Any]] = {}

    def add(key: tuple[Any, ...], values: dict[str, Any], sign: int) -> None:
        d = delta.setdefault(key, {m: 0 for m in MEASURES})
        for m in MEASURES:
            d[m] += sign * values[m]

    rcd = ReportConversationDay.__table__
    old = await s.execute(select(rcd).where(rcd.c.conversation_id.in_(ids)))
    for row in old:
        key = (row.workspace_id, row.day, row.inbox_id, row.channel_id, row.agent_id, row.team_id)
        add(key, {m: getattr(row, m) for m in MEASURES}, -1)
    stats_rows: list[dict[str, Any]] = []
    day_rows: list[dict[str, Any]] = []
    for cid in ids:
        conv = convs.get(cid)
        result = compute(conv, by_conv.get(cid, []), logs.get(cid, []), refused, hours)
        if result.stats is None or conv is None:
            continue
        stats_rows.append(result.stats)
        agent, team = conv.assignee_id or 0, conv.team_id or 0
        for (day, channel), values in result.days.items():
            key = (conv.workspace_id, day, conv.inbox_id, channel, agent, team)
            add(key, values, +1)
            day_rows.append(
                {
                    "conversation_id": cid,
                    "day": day,
                    "channel_id": channel,
                    "workspace_id": conv.workspace_id,
                    "inbox_id": conv.inbox_id,
                    "agent_id": agent,
                    "team_id": team,
                    "contact_id": conv.contact_id,
                    **values,
                }
            )
    await s.execute(
        delete(ReportConversationDay).where(ReportConversationDay.conversation_id.in_(ids))
    )
    await s.execute(delete(ReportConversation).where(ReportConversation.conversation_id.in_(ids)))
    # Core executemany (one compiled statement), not ORM bulk inserts: this is the hot part of
    # a rebuild.
    if stats_rows:
        await s.execute(insert(ReportConversation), stats_rows)
    if day_rows:
        await s.execute(insert(ReportConversationDay.__table__), day_rows)  # type: ignore[arg-type]
    changes = [
        dict(zip(DIMS, key, strict=True), **values)
        for key, values in delta.items()
        if any(values[m] for m in MEASURES)
    ]
    if changes:
        daily = ReportDaily.__table__
        stmt = db.insert(daily)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(DIMS),
            set_={m: daily.c[m] + stmt.excluded[m] for m in MEASURES},
        )
        await s.execute(stmt, changes)


async def _lock(s: AsyncSession, db: Database) -> None:
    """Wait for the rollup lock (the rebuild must not interleave with a job's batch)."""
    if not db.is_sqlite:
        await s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})


async def process_batch(rt: Runtime, limit: int = BATCH, upto: int | None = None) -> int:
    """Apply one batch: the oldest marks (at most `limit`, only ids <= `upto` when given) name
    the conversations, and every mark of those conversations up to the same bound is consumed
    by their one recompute. Returns how many marks it consumed (0: nothing to do, or another
    process holds the rollup lock)."""
    bound = [] if upto is None else [ReportDirty.id <= upto]
    # Look before taking the write lock: on SQLite an idle job must not take the single
    # writer's lock every second.
    async with rt.db.read() as s:
        if await s.scalar(select(ReportDirty.id).where(*bound).limit(1)) is None:
            return 0
    async with rt.db.write() as s:
        if not rt.db.is_sqlite:
            got = await s.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
            if not got:
                return 0
        oldest = (
            await s.scalars(
                select(ReportDirty.conversation_id)
                .where(*bound)
                .order_by(ReportDirty.id)
                .limit(limit)
            )
        ).all()
        if not oldest:
            return 0
        ids = sorted(set(oldest))
        # Read before the recompute reads the raw rows, so every mark consumed here was
        # committed before the rows it stands for were read. A mark committed meanwhile (maybe
        # with a lower id, on PostgreSQL) is not in this list and stays for the next batch.
        found = (
            await s.execute(
                select(ReportDirty.id, ReportDirty.conversation_id).where(
                    ReportDirty.conversation_id.in_(ids), *bound
                )
            )
        ).all()
        started = time.monotonic()
        recomputed: set[int] = set()
        for chunk in chunks(ids, RECOMPUTE_CHUNK):
            await recompute(s, rt.db, chunk)
            recomputed.update(chunk)
            if rt.db.is_sqlite and (
                time.monotonic() - started > SLICE_SECONDS or rt.db.priority.held
            ):
                # The slice is up, or a customer's event is on its way to the agents and
                # waits for this write lock (storage/db.py `PriorityHold`): the rest of the
                # batch is the next one's.
                break
        marks = [mark for mark, conversation in found if conversation in recomputed]
        for chunk in chunks(marks, 500):
            await s.execute(delete(ReportDirty).where(ReportDirty.id.in_(chunk)))
        return len(marks)


async def drain(rt: Runtime, limit: int = BATCH) -> int:
    """Apply marks until none are left (tests, the CLI). Returns marks consumed."""
    total = 0
    while True:
        n = await process_batch(rt, limit)
        if n == 0:
            return total
        total += n


async def pending(rt: Runtime) -> int:
    async with rt.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(ReportDirty)) or 0)


async def rebuild(
    db: Database, *, batch: int = 2000, progress: Callable[[int, int], None] | None = None
) -> int:
    """Recompute every report row from the raw tables (after a bulk load, or to apply changed
    business hours to old conversations). Marks present at the start are consumed; marks
    written while it runs stay for the job. Returns the number of conversations."""
    async with db.write() as s:
        await _lock(s, db)
        high_mark = await s.scalar(select(func.max(ReportDirty.id)))
        top = int(await s.scalar(select(func.max(Conversation.id))) or 0)
        if high_mark is not None:
            await s.execute(delete(ReportDirty).where(ReportDirty.id <= high_mark))
        for table in (ReportDaily, ReportConversationDay, ReportConversation):
            await s.execute(delete(table))
    done = 0
    for start in range(1, top + 1, batch):
        async with db.write() as s:
            await _lock(s, db)
            ids = (
                await s.scalars(
                    select(Conversation.id).where(
                        Conversation.id >= start, Conversation.id < start + batch
                    )
                )
            ).all()
            await recompute(s, db, ids)
        done += len(ids)
        if progress is not None:
            progress(done, top)
    return done


async def run(rt: Runtime) -> None:
    """The rollup loop (one per worker process; several are safe). It applies marks once they
    are `SETTLE_SECONDS` old: the burst of marks one change makes (a campaign message marks its
    conversation when it is queued, sent, delivered and read, within seconds) then costs one
    recompute instead of one per mark."""
    seen: deque[tuple[float, int]] = deque()  # (when, the highest mark id then)
    while True:
        try:
            now = time.monotonic()
            async with rt.db.read() as s:
                top = await s.scalar(select(func.max(ReportDirty.id)))
            if top is not None and (not seen or seen[-1][1] != top):
                seen.append((now, int(top)))
            upto = None
            while seen and now - seen[0][0] >= SETTLE_SECONDS:
                upto = seen.popleft()[1]
            handled = 0
            if upto is not None:
                handled = await process_batch(rt, upto=upto)
                if handled:
                    # Marks up to `upto` may remain: look again at once.
                    seen.appendleft((now - SETTLE_SECONDS, upto))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("report rollup failed; retrying")
            await asyncio.sleep(IDLE_SECONDS)
            continue
        if not handled:
            await asyncio.sleep(IDLE_SECONDS)
