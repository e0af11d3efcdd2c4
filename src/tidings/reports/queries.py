"""The reports, read from the report tables only (never from `message`), so their cost follows
the date range, not the size of the workspace.

- counts and sums over a range come from the `report_daily` rollup (a few rows per day), or
  from `report_conversation_day` when a label filter needs the conversation;
- medians and p90s come from `report_conversation`, one row per conversation, read through its
  (workspace, created_day) or (workspace, resolved_day) index;
- "now" figures (waiting for an agent, load per agent) come from `report_conversation` too.

Days are UTC calendar days; `end` is inclusive.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, exists, func, literal, or_, select, text, tuple_, union_all
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.campaigns import report as campaign_report
from tidings.policy.sms import price_table
from tidings.reports.models import (
    MEASURES,
    ReportConversation,
    ReportConversationDay,
    ReportDaily,
    ReportOptOut,
)
from tidings.serialize import ts
from tidings.storage.db import Database
from tidings.storage.models import (
    Agent,
    Campaign,
    Channel,
    Contact,
    Conversation,
    ConversationChannel,
    ConversationLabel,
    CsatResponse,
    Inbox,
    Label,
    SlaBreach,
    Team,
)

RC = ReportConversation
MAX_DAYS = 400


@dataclass(frozen=True, slots=True)
class Filters:
    workspace_id: int
    start: date
    end: date  # inclusive
    inbox_id: int | None = None
    channel_id: int | None = None
    team_id: int | None = None
    agent_id: int | None = None
    label_id: int | None = None
    business_hours: bool = False

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


# --- filters --------------------------------------------------------------------------------


def _dims(table: Any, f: Filters) -> list[ColumnElement[bool]]:
    """Conditions on a measures table (`ReportDaily` or `ReportConversationDay`)."""
    out: list[ColumnElement[bool]] = [table.workspace_id == f.workspace_id]
    if f.inbox_id is not None:
        out.append(table.inbox_id == f.inbox_id)
    if f.channel_id is not None:
        out.append(table.channel_id == f.channel_id)
    if f.team_id is not None:
        out.append(table.team_id == f.team_id)
    if f.agent_id is not None:
        out.append(table.agent_id == f.agent_id)
    if f.label_id is not None:
        out.append(_labelled(table.conversation_id, f.label_id))
    return out


def _labelled(conversation_id: Any, label_id: int) -> ColumnElement[bool]:
    return exists().where(
        ConversationLabel.conversation_id == conversation_id,
        ConversationLabel.label_id == label_id,
    )


def _measures_table(f: Filters) -> Any:
    # The rollup has no label dimension; a label filter reads the per-conversation-day rows.
    return ReportConversationDay if f.label_id is not None else ReportDaily


def _conv(f: Filters, *, channel_any: bool = False) -> list[ColumnElement[bool]]:
    """Conditions on `report_conversation`. The channel filter matches the channel the
    conversation started on (as the rollup's conversation counts do), or with `channel_any`
    any channel it used."""
    out: list[ColumnElement[bool]] = [RC.workspace_id == f.workspace_id]
    if f.inbox_id is not None:
        out.append(RC.inbox_id == f.inbox_id)
    if f.channel_id is not None:
        out.append(
            RC.channels.like(f"%,{int(f.channel_id)},%")
            if channel_any
            else RC.channel_id == f.channel_id
        )
    if f.team_id is not None:
        out.append(RC.team_id == f.team_id if f.team_id else RC.team_id.is_(None))
    if f.agent_id is not None:
        out.append(RC.assignee_id == f.agent_id if f.agent_id else RC.assignee_id.is_(None))
    if f.label_id is not None:
        out.append(_labelled(RC.conversation_id, f.label_id))
    return out


def _created_in(f: Filters) -> list[ColumnElement[bool]]:
    return [RC.created_day >= f.start, RC.created_day <= f.end]


def _resolved_in(f: Filters) -> list[ColumnElement[bool]]:
    return [RC.resolved_day >= f.start, RC.resolved_day <= f.end]


# --- percentiles ----------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    if not sorted_values:
        return None
    pos = p * (len(sorted_values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _from_label(stmt: Any, label_id: int | None) -> Any:
    """With a label filter, read from the label's side: its conversations by primary key,
    rather than probing the label for every conversation of the range."""
    if label_id is None:
        return stmt
    return (
        stmt.select_from(ConversationLabel)
        .join(RC, RC.conversation_id == ConversationLabel.conversation_id)
        .where(ConversationLabel.label_id == label_id)
    )


def _percentiles(col: Any) -> Any:
    """Median and p90 in one ordered-set aggregate (one sort of the column, not two)."""
    return func.percentile_cont(postgresql.array([0.5, 0.9])).within_group(col)


def _pair(value: Any) -> tuple[Any, Any]:
    return (value[0], value[1]) if value else (None, None)


async def tune(s: AsyncSession, db: Database) -> None:
    """Per report transaction on PostgreSQL: enough sort memory that a 90-day median sorts in
    memory rather than spilling to disk (the default 4 MB spills at ~300k values)."""
    if not db.is_sqlite:
        await s.execute(text("SET LOCAL work_mem = '64MB'"))


async def _parallel(db: Database, *parts: Callable[[AsyncSession], Awaitable[Any]]) -> list[Any]:
    """Independent parts of one report, each on its own connection, at the same time."""

    async def run(part: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
        async with db.read() as s:
            await tune(s, db)
            return await part(s)

    return list(await asyncio.gather(*(run(p) for p in parts)))


def _timing(median: Any, p90: Any, n: Any) -> dict[str, Any]:
    return {
        "median_seconds": None if median is None else round(float(median)),
        "p90_seconds": None if p90 is None else round(float(p90)),
        "conversations": int(n or 0),
    }


def _stats(values: list[float]) -> dict[str, Any]:
    v = sorted(values)
    return _timing(percentile(v, 0.5), percentile(v, 0.9), len(v))


async def _timings(
    s: AsyncSession,
    db: Database,
    columns: dict[str, Any],
    where: Sequence[ColumnElement[bool]],
    *sets: Sequence[Any],
    label_id: int | None = None,
) -> list[dict[tuple[Any, ...], dict[str, Any]]]:
    """Per grouping set of key columns (none given: one group of all rows) and per value of its
    keys: the row count (`rows`) and the median, p90 and count of each column (NULLs left out).
    PostgreSQL computes them in one statement, several sets (agent and team) in one scan
    (GROUPING SETS) instead of one per set; SQLite has no percentile function, so its (small,
    embedded) sets are sorted here."""
    sets = sets or ((),)
    keys = [k for ks in sets for k in ks]
    spans: list[range] = []  # each set's positions in `keys`
    for ks in sets:
        start = spans[-1].stop if spans else 0
        spans.append(range(start, start + len(ks)))
    n = len(keys)
    out: list[dict[tuple[Any, ...], dict[str, Any]]] = [{} for _ in sets]
    if not db.is_sqlite:
        multi = len(sets) > 1
        cols: list[Any] = [
            *keys,
            *([func.grouping(k) for k in keys] if multi else []),
            func.count(),
        ]
        base = len(cols) - 1
        for col in columns.values():
            cols += [_percentiles(col), func.count(col)]
        stmt = _from_label(select(*cols).where(*where), label_id)
        if multi:
            stmt = stmt.group_by(func.grouping_sets(*[tuple_(*ks) for ks in sets]))
        elif keys:
            stmt = stmt.group_by(*keys)
        for row in await s.execute(stmt):
            entry: dict[str, Any] = {"rows": int(row[base])}
            for i, name in enumerate(columns):
                entry[name] = _timing(*_pair(row[base + 1 + 2 * i]), row[base + 2 + 2 * i])
            for si, span in enumerate(spans):
                # With several sets, a row belongs to the set whose keys it groups by.
                if not multi or not any(row[n + j] for j in span):
                    out[si][tuple(row[j] for j in span)] = entry
        return out
    rows_of: list[dict[tuple[Any, ...], int]] = [defaultdict(int) for _ in sets]
    values: list[dict[tuple[Any, ...], dict[str, list[float]]]] = [{} for _ in sets]
    for row in await s.execute(
        _from_label(select(*keys, *columns.values()).where(*where), label_id)
    ):
        for si, span in enumerate(spans):
            k = tuple(row[j] for j in span)
            rows_of[si][k] += 1
            per = values[si].setdefault(k, {name: [] for name in columns})
            for i, name in enumerate(columns):
                if row[n + i] is not None:
                    per[name].append(float(row[n + i]))
    for si in range(len(sets)):
        for k, per in values[si].items():
            out[si][k] = {"rows": rows_of[si][k], **{name: _stats(per[name]) for name in columns}}
    return out


# --- conversations --------------------------------------------------------------------------


async def _one(s: AsyncSession, stmt: Any) -> Any:
    return (await s.execute(stmt)).one()


async def _all(s: AsyncSession, stmt: Any) -> list[Any]:
    return list((await s.execute(stmt)).all())


def _columns(f: Filters, *names: str) -> dict[str, Any]:
    """The columns of these timings (`first_response`, `reply`, `resolution`), in business
    time when `f` asks for it."""
    return {
        n: getattr(RC, f"{n}_bh_seconds" if f.business_hours else f"{n}_seconds") for n in names
    }


def _timing_reads(
    db: Database, f: Filters, by_day: bool
) -> tuple[Callable[[AsyncSession], Awaitable[Any]], ...]:
    """The two timing reads of `f`: first response and reply times of the conversations created
    in it, resolution times of those resolved in it (grouped by that day with `by_day`)."""
    where = _conv(replace(f, label_id=None))
    created = ((RC.created_day,),) if by_day else ()
    resolved = ((RC.resolved_day,),) if by_day else ()
    return (
        lambda s2: _timings(
            s2,
            db,
            _columns(f, "first_response", "reply"),
            [*where, *_created_in(f)],
            *created,
            label_id=f.label_id,
        ),
        lambda s2: _timings(
            s2,
            db,
            _columns(f, "resolution"),
            [*where, *_resolved_in(f)],
            *resolved,
            label_id=f.label_id,
        ),
    )


async def conversations(s: AsyncSession, db: Database, f: Filters) -> dict[str, Any]:
    """New, resolved and unresolved backlog per day; first response, reply and resolution
    times (median, p90); conversations waiting for an agent now."""
    new: dict[date, int] = defaultdict(int)
    resolved: dict[date, int] = defaultdict(int)
    if f.label_id is None:
        where = _dims(ReportDaily, f)
        daily, before = await _parallel(
            db,
            lambda s2: _all(
                s2,
                select(
                    ReportDaily.day,
                    func.sum(ReportDaily.conversations_new),
                    func.sum(ReportDaily.conversations_resolved),
                )
                .where(*where, ReportDaily.day >= f.start, ReportDaily.day <= f.end)
                .group_by(ReportDaily.day),
            ),
            lambda s2: _one(
                s2,
                select(
                    func.sum(ReportDaily.conversations_new),
                    func.sum(ReportDaily.conversations_resolved),
                ).where(*where, ReportDaily.day < f.start),
            ),
        )
        for day, n_new, n_res in daily:
            new[day], resolved[day] = int(n_new or 0), int(n_res or 0)
        backlog = int(before[0] or 0) - int(before[1] or 0)
    else:
        # One pass over the label's conversations (from the label's side: a few thousand
        # primary-key lookups), counted into the range's days and the backlog before it.
        backlog = 0
        for cday, rday, n in await s.execute(
            select(RC.created_day, RC.resolved_day, func.count())
            .select_from(ConversationLabel)
            .join(RC, RC.conversation_id == ConversationLabel.conversation_id)
            .where(
                ConversationLabel.label_id == f.label_id,
                *_conv(replace(f, label_id=None)),
                RC.created_day <= f.end,
            )
            .group_by(RC.created_day, RC.resolved_day)
        ):
            if cday >= f.start:
                new[cday] += int(n)
            else:
                backlog += int(n)
            if rday is not None and rday <= f.end:
                if rday >= f.start:
                    resolved[rday] += int(n)
                else:
                    backlog -= int(n)
    series = []
    for day in f.days:
        backlog += new[day] - resolved[day]
        series.append(
            {"day": day.isoformat(), "new": new[day], "resolved": resolved[day], "backlog": backlog}
        )
    (created,), (resolved_t,), waiting_row = await _parallel(
        db,
        *_timing_reads(db, f, by_day=False),
        lambda s2: _one(
            s2,
            select(func.count(), func.min(RC.waiting_since)).where(
                *_conv(f), RC.waiting_since.isnot(None)
            ),
        ),
    )
    created_timings, resolved_timings = created.get((), {}), resolved_t.get((), {})
    waiting, oldest = waiting_row
    none = _timing(None, None, 0)
    return {
        **_range(f),
        "business_hours": f.business_hours,
        "totals": {
            "new": sum(new.values()),
            "resolved": sum(resolved.values()),
            "backlog": backlog,
        },
        "first_response": created_timings.get("first_response", none),
        "reply": created_timings.get("reply", none),
        "resolution": resolved_timings.get("resolution", none),
        "waiting_now": {
            "conversations": int(waiting or 0),
            "oldest_since": ts(oldest),
        },
        "series": series,
    }


async def daily_timings(s: AsyncSession, db: Database, f: Filters) -> dict[str, dict[str, Any]]:
    """First response and reply times of the conversations created on each day, resolution
    times of those resolved on it (median, p90, count): the conversations CSV's per-day
    figures. The same reads as the range's timings, grouped by day."""
    (created,), (resolved,) = await _parallel(db, *_timing_reads(db, f, by_day=True))
    none = _timing(None, None, 0)
    return {
        d.isoformat(): {
            "first_response": created.get((d,), {}).get("first_response", none),
            "reply": created.get((d,), {}).get("reply", none),
            "resolution": resolved.get((d,), {}).get("resolution", none),
        }
        for d in f.days
    }


# --- channels -------------------------------------------------------------------------------


def _money(value: Any) -> str:
    """Exact (costs are stored to 1/100000), without trailing zeros past the cents: 0.0079,
    12.50, 0.00. The currency is the price table's (`currency` in the report)."""
    d = Decimal(value or 0).quantize(Decimal("0.00001")).normalize()
    cents = d.quantize(Decimal("0.01"))
    return str(cents if cents == d else d)


def currency() -> str:
    return price_table().currency


def _channel_row(
    channel_id: int | None, sums: Sequence[Any], names: dict[int, Any]
) -> dict[str, Any]:
    """One channel's figures from the sums of `MEASURES` (over a range, or one day)."""
    m = {k: (v or 0) for k, v in zip(MEASURES, sums, strict=True)}
    out = int(m["messages_out"])
    name, kind = names.get(channel_id or 0, (None, None))
    return {
        "channel_id": channel_id or None,
        "name": name,
        "kind": kind,
        "messages_in": int(m["messages_in"]),
        "messages_out": out,
        "conversations_new": int(m["conversations_new"]),
        "delivered": int(m["delivered"]),
        "read": int(m["read"]),
        "failed": int(m["failed"]),
        "delivery_rate": _rate(int(m["delivered"]), out),
        "read_rate": _rate(int(m["read"]), out),
        "fallbacks": {
            "failed": int(m["fallbacks_failed"]),
            "not_delivered_in_time": int(m["fallbacks_timeout"]),
            "refused": int(m["fallbacks_refused"]),
        },
        "customer_replies": int(m["customer_replies"]),
        "customer_reply_avg_seconds": (
            round(int(m["customer_reply_seconds"]) / int(m["customer_replies"]))
            if m["customer_replies"]
            else None
        ),
        "cost": _money(m["cost"]),
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def channels(
    s: AsyncSession, db: Database, f: Filters, *, per_day: bool = False
) -> dict[str, Any]:
    """Volume, delivery and read rates, fallbacks (and why), opt-outs and cost per channel;
    customers on more than one channel, and the channel they answer fastest on. With
    `per_day`, also `days`: the same figures per day and channel (the CSV)."""
    table = _measures_table(f)
    in_range = [*_dims(table, f), table.day >= f.start, table.day <= f.end]
    sums = [func.sum(getattr(table, m)) for m in MEASURES]
    start, stop = _span(f)
    names = {
        c.id: (c.name, c.kind)
        for c in await _all(
            s,
            select(Channel.id, Channel.name, Channel.kind).where(
                Channel.workspace_id == f.workspace_id
            ),
        )
    }
    rows = []
    per_channel, daily, (multi, fastest) = await _parallel(
        db,
        lambda s2: _all(
            s2, select(table.channel_id, *sums).where(*in_range).group_by(table.channel_id)
        ),
        lambda s2: _all(
            s2,
            select(table.day, table.channel_id, *sums)
            .where(*in_range)
            .group_by(table.day, table.channel_id),
        ),
        lambda s2: _preference(s2, f),
    )
    for row in per_channel:
        rows.append(_channel_row(row[0], row[1:], names))
    rows.sort(key=lambda r: (r["channel_id"] is None, r["channel_id"] or 0))
    series: dict[str, dict[str, int]] = {}
    days: list[dict[str, Any]] = []
    for day, channel_id, *measures in daily:
        row = _channel_row(channel_id, measures, names)
        series.setdefault(day.isoformat(), {})[str(channel_id)] = (
            row["messages_in"] + row["messages_out"]
        )
        days.append({"day": day.isoformat(), **row})
    days.sort(key=lambda r: (r["day"], r["channel_id"] is None, r["channel_id"] or 0))
    opt_outs = [
        {"channel_kind": kind, "contacts": int(n)}
        for kind, n in await s.execute(
            select(ReportOptOut.channel_kind, func.count(func.distinct(ReportOptOut.contact_id)))
            .where(
                ReportOptOut.workspace_id == f.workspace_id,
                ReportOptOut.at >= start,
                ReportOptOut.at < stop,
            )
            .group_by(ReportOptOut.channel_kind)
            .order_by(ReportOptOut.channel_kind)
        )
    ]
    return {
        **_range(f),
        "currency": currency(),
        "channels": rows,
        **({"days": days} if per_day else {}),
        "totals": {
            "messages": sum(r["messages_in"] + r["messages_out"] for r in rows),
            "cost": _money(sum(Decimal(r["cost"]) for r in rows)),
            "fallbacks": sum(sum(r["fallbacks"].values()) for r in rows),
        },
        "opt_outs": opt_outs,
        "customers": {
            "multi_channel": multi,
            "fastest_channel": [
                {
                    "channel_id": cid,
                    "name": names.get(cid, (None, None))[0],
                    "customers": n,
                }
                for cid, n in fastest
            ],
        },
        "series": [{"day": d.isoformat(), **series.get(d.isoformat(), {})} for d in f.days],
    }


def _range(f: Filters) -> dict[str, str]:
    return {"from": f.start.isoformat(), "to": f.end.isoformat()}


def _span(f: Filters) -> tuple[datetime, datetime]:
    """The range as instants: its first midnight and the midnight after its last day (UTC)."""
    return _midnight(f.start), _midnight(f.end + timedelta(days=1))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


async def _names(s: AsyncSession, model: Any, f: Filters) -> dict[int, str]:
    """Id -> name of the workspace's rows of `model` (agents, teams, inboxes, channels)."""
    rows = await s.execute(select(model.id, model.name).where(model.workspace_id == f.workspace_id))
    return {row[0]: row[1] for row in rows}


def _named(names: dict[int, str], what: str, row_id: int | None) -> str | None:
    """The name of row `row_id` (None for none), or "deleted <what> #<id>" for one gone."""
    return names.get(row_id, f"deleted {what} #{row_id}") if row_id else None


async def _preference(s: AsyncSession, f: Filters) -> tuple[int, list[tuple[int, int]]]:
    """How many customers used more than one channel in a conversation created in the range
    (messages either way), and on which of them they answered fastest (mean reply wait)."""
    t = ReportConversationDay
    # Start from the conversations created in the range that used more than one channel (a
    # partial index holds just those), then read their per-channel contributions.
    per = (
        select(
            RC.contact_id.label("contact_id"),
            t.channel_id.label("channel_id"),
            func.sum(t.customer_replies).label("replies"),
            func.sum(t.customer_reply_seconds).label("seconds"),
        )
        .join(t, t.conversation_id == RC.conversation_id)
        .where(*_conv(f, channel_any=True), *_created_in(f), RC.channel_count > 1)
        .where(t.channel_id != 0, or_(t.messages_in > 0, t.messages_out > 0))
        .group_by(RC.contact_id, t.channel_id)
        .cte("per")
    )
    multi_ids = (
        select(per.c.contact_id).group_by(per.c.contact_id).having(func.count() > 1).cte("multi")
    )
    speed = per.c.seconds * 1.0 / per.c.replies
    ranked = (
        select(
            per.c.contact_id,
            per.c.channel_id,
            func.row_number()
            .over(partition_by=per.c.contact_id, order_by=(speed, per.c.channel_id))
            .label("rank"),
        )
        .join(multi_ids, multi_ids.c.contact_id == per.c.contact_id)
        .where(per.c.replies > 0)
        .cte("ranked")
    )
    # One statement, so `per` (the expensive part) is computed once: the multi-channel count
    # comes back as the row with channel -1.
    rows = await s.execute(
        union_all(
            select(literal(-1).label("channel_id"), func.count().label("n")).select_from(multi_ids),
            select(ranked.c.channel_id, func.count())
            .where(ranked.c.rank == 1)
            .group_by(ranked.c.channel_id),
        )
    )
    multi = 0
    fastest: list[tuple[int, int]] = []
    for channel_id, n in rows:
        if channel_id == -1:
            multi = int(n)
        else:
            fastest.append((int(channel_id), int(n)))
    fastest.sort()
    return multi, fastest


# --- agents and teams -----------------------------------------------------------------------


async def agents(s: AsyncSession, db: Database, f: Filters) -> dict[str, Any]:
    """Per agent and per team: conversations (created in the range), resolved (in the range),
    first response and resolution times, and open load now."""
    names = {"agent": await _names(s, Agent, f), "team": await _names(s, Team, f)}
    # A workspace without teams gets no team grouping (it would be one "no team" row bought
    # with a second sort of every conversation in the range).
    groups = (
        {"agent": RC.assignee_id, "team": RC.team_id}
        if names["team"]
        else {"agent": RC.assignee_id}
    )
    sets = [(key,) for key in groups.values()]
    created, resolved, load_rows = await _parallel(
        db,
        lambda s2: _timings(
            s2, db, _columns(f, "first_response"), [*_conv(f), *_created_in(f)], *sets
        ),
        lambda s2: _timings(
            s2, db, _columns(f, "resolution"), [*_conv(f), *_resolved_in(f)], *sets
        ),
        lambda s2: _all(
            s2,
            select(RC.assignee_id, RC.team_id, func.count())
            .where(*_conv(f), RC.status.in_(("open", "pending")))
            .group_by(RC.assignee_id, RC.team_id),
        ),
    )
    load: dict[str, dict[Any, int]] = {"agent": {}, "team": {}}
    for agent_id, team_id, n in load_rows:
        load["agent"][agent_id] = load["agent"].get(agent_id, 0) + int(n)
        load["team"][team_id] = load["team"].get(team_id, 0) + int(n)
    out: dict[str, Any] = {**_range(f), "business_hours": f.business_hours}
    none = _timing(None, None, 0)
    out["teams"] = []
    for gi, kind in enumerate(groups):
        c = {k: v for (k,), v in created[gi].items()}
        r = {k: v for (k,), v in resolved[gi].items()}
        ld = load[kind]
        rows = [
            {
                f"{kind}_id": k,
                "name": names[kind].get(k) if k is not None else None,
                "conversations": int(c.get(k, {}).get("rows", 0)),
                "resolved": int(r.get(k, {}).get("rows", 0)),
                "first_response": c.get(k, {}).get("first_response", none),
                "resolution": r.get(k, {}).get("resolution", none),
                "open_now": int(ld.get(k, 0)),
            }
            for k in set(c) | set(r) | set(ld)
        ]
        rows.sort(key=lambda row: (row[f"{kind}_id"] is None, row[f"{kind}_id"] or 0))
        out[f"{kind}s"] = rows
    return out


async def agents_daily(
    s: AsyncSession, db: Database, f: Filters, kinds: Sequence[str]
) -> list[dict[str, Any]]:
    """The agents report per day (the CSV): for each day and agent (and team, when `kinds`
    has it), the conversations created that day with their first response times and those
    resolved that day with their resolution times. Days without either have no line. Load
    ("open now") is not a figure of a past day and stays in the range report."""
    keys = {"agent": RC.assignee_id, "team": RC.team_id}
    out: list[dict[str, Any]] = []
    none = _timing(None, None, 0)
    for kind in kinds:
        (created,) = await _timings(
            s,
            db,
            _columns(f, "first_response"),
            [*_conv(f), *_created_in(f)],
            (RC.created_day, keys[kind]),
        )
        (resolved,) = await _timings(
            s,
            db,
            _columns(f, "resolution"),
            [*_conv(f), *_resolved_in(f)],
            (RC.resolved_day, keys[kind]),
        )
        for d, k in set(created) | set(resolved):
            c, r = created.get((d, k)), resolved.get((d, k))
            out.append(
                {
                    "day": d,
                    "group": kind,
                    "id": k,
                    "conversations": c["rows"] if c else 0,
                    "resolved": r["rows"] if r else 0,
                    "first_response": c["first_response"] if c else none,
                    "resolution": r["resolution"] if r else none,
                }
            )
    out.sort(key=lambda row: (row["day"], row["group"], row["id"] is None, row["id"] or 0))
    return out


# --- CSAT and SLA ---------------------------------------------------------------------------


def _service_dims(table: Any, f: Filters, agent_col: Any, channel: Any) -> list[Any]:
    """The report filters on `csat_response` / `sla_breach`: their own inbox and agent columns
    (the agent the survey or breach was recorded for; 0 = nobody), the conversation's team and
    labels now, and the channel (`channel`: a condition for `f.channel_id`)."""
    out: list[Any] = [table.workspace_id == f.workspace_id]
    if f.inbox_id is not None:
        out.append(table.inbox_id == f.inbox_id)
    if f.agent_id is not None:
        out.append(agent_col == f.agent_id if f.agent_id else agent_col.is_(None))
    if f.channel_id is not None:
        out.append(channel)
    if f.team_id is not None:
        team = Conversation.team_id == f.team_id if f.team_id else Conversation.team_id.is_(None)
        out.append(exists().where(Conversation.id == table.conversation_id, team))
    if f.label_id is not None:
        out.append(_labelled(table.conversation_id, f.label_id))
    return out


def _csat_figures(ratings: Sequence[int]) -> dict[str, Any]:
    n = len(ratings)
    return {
        "answered": n,
        "average": round(sum(ratings) / n, 2) if n else None,
        # The share of 4 and 5 ratings: the usual "CSAT score".
        "satisfied_share": _rate(sum(1 for r in ratings if r >= 4), n),
    }


async def service(s: AsyncSession, f: Filters) -> dict[str, Any]:
    """CSAT and SLA over the range. CSAT: the surveys answered in the range (count, average,
    share of 4-5, distribution) and the response rate of those asked in it; SLA: the targets
    that fell due in the range and were missed, per target, answered late or still waiting.
    Both per day and per agent. The survey and breach tables hold at most a row or two per
    conversation and are read through their (workspace, time) indexes, then summed here."""
    start, stop = _span(f)
    csat_where = _service_dims(
        CsatResponse, f, CsatResponse.agent_id, CsatResponse.channel_id == f.channel_id
    )
    answered = await _all(
        s,
        select(CsatResponse.answered_at, CsatResponse.rating, CsatResponse.agent_id).where(
            *csat_where,
            CsatResponse.answered_at >= start,
            CsatResponse.answered_at < stop,
            CsatResponse.rating.isnot(None),
        ),
    )
    asked_rows = await _all(
        s,
        select(CsatResponse.state, func.count())
        .where(*csat_where, CsatResponse.asked_at >= start, CsatResponse.asked_at < stop)
        .group_by(CsatResponse.state),
    )
    asked_by_state = {state: int(n) for state, n in asked_rows}
    breach_channel = exists().where(
        ConversationChannel.conversation_id == SlaBreach.conversation_id,
        ConversationChannel.channel_id == f.channel_id,
    )
    breaches = await _all(
        s,
        select(
            SlaBreach.due_at,
            SlaBreach.target,
            SlaBreach.assignee_id,
            SlaBreach.responded_at,
            SlaBreach.conversation_id,
        ).where(
            *_service_dims(SlaBreach, f, SlaBreach.assignee_id, breach_channel),
            SlaBreach.due_at >= start,
            SlaBreach.due_at < stop,
        ),
    )
    names = await _names(s, Agent, f)

    ratings_by_day: dict[str, list[int]] = defaultdict(list)
    ratings_by_agent: dict[int | None, list[int]] = defaultdict(list)
    all_ratings: list[int] = []
    for at, rating, agent_id in answered:
        if at is None or rating is None:  # excluded by the query; for the type checker
            continue
        ratings_by_day[at.date().isoformat()].append(rating)
        ratings_by_agent[agent_id].append(rating)
        all_ratings.append(rating)
    breaches_by_day: dict[str, int] = defaultdict(int)
    breaches_by_agent: dict[int | None, int] = defaultdict(int)
    by_target: dict[str, int] = defaultdict(int)
    for due_at, target, assignee_id, _responded, _conv_id in breaches:
        breaches_by_day[due_at.date().isoformat()] += 1
        breaches_by_agent[assignee_id] += 1
        by_target[target] += 1
    asked = sum(n for state, n in asked_by_state.items() if state != "skipped")
    asked_answered = asked_by_state.get("answered", 0)
    per_agent = [
        {
            "agent_id": agent_id,
            "name": names.get(agent_id) if agent_id is not None else None,
            **_csat_figures(ratings_by_agent.get(agent_id, [])),
            "sla_breaches": breaches_by_agent.get(agent_id, 0),
        }
        for agent_id in set(ratings_by_agent) | set(breaches_by_agent)
    ]
    per_agent.sort(key=lambda row: (row["agent_id"] is None, row["agent_id"] or 0))
    return {
        **_range(f),
        "csat": {
            **_csat_figures(all_ratings),
            "distribution": {str(k): all_ratings.count(k) for k in range(1, 6)},
            "asked": asked,
            "skipped": asked_by_state.get("skipped", 0),
            "response_rate": _rate(asked_answered, asked),
        },
        "sla": {
            "breaches": len(breaches),
            "conversations": len({b[4] for b in breaches}),
            "first_response": by_target.get("first_response", 0),
            "next_response": by_target.get("next_response", 0),
            "answered_late": sum(1 for b in breaches if b[3] is not None),
            "unanswered": sum(1 for b in breaches if b[3] is None),
        },
        "agents": per_agent,
        "series": [
            {
                "day": d.isoformat(),
                **_csat_figures(ratings_by_day.get(d.isoformat(), [])),
                "sla_breaches": breaches_by_day.get(d.isoformat(), 0),
            }
            for d in f.days
        ],
    }


# --- campaigns ------------------------------------------------------------------------------


async def campaigns(s: AsyncSession, f: Filters, limit: int = 100) -> dict[str, Any]:
    """The per-campaign report (tidings.campaigns.report) of each campaign launched in the
    range, side by side."""
    launched = func.coalesce(Campaign.launched_at, Campaign.created_at)
    start, stop = _span(f)
    rows = (
        await s.scalars(
            select(Campaign)
            .where(
                Campaign.workspace_id == f.workspace_id,
                launched >= start,
                launched < stop,
            )
            .order_by(launched.desc(), Campaign.id.desc())
            .limit(limit)
        )
    ).all()
    out = []
    for c in rows:
        r = await campaign_report.report(s, c)
        r["name"] = c.name
        out.append(r)
    return {
        **_range(f),
        "currency": currency(),
        "campaigns": out,
    }


# --- per-conversation export ----------------------------------------------------------------

EXPORT_COLUMNS = (
    "conversation_id",
    "created_at",
    "status",
    "inbox",
    "contact_id",
    "contact_name",
    "first_channel",
    "channels",
    "assignee",
    "team",
    "labels",
    "first_response_seconds",
    "first_response_business_seconds",
    "replies",
    "reply_seconds_mean",
    "resolved_at",
    "resolution_seconds",
    "resolution_business_seconds",
    "messages_in",
    "messages_out",
    "failed",
    "fallbacks",
    "cost",
)


async def export_rows(
    s: AsyncSession, f: Filters, page: int = 2000
) -> AsyncIterator[list[dict[str, Any]]]:
    """One row per conversation created in the range, in pages (keyset on created_day, id)."""
    inboxes, agents_ = await _names(s, Inbox, f), await _names(s, Agent, f)
    teams, chans = await _names(s, Team, f), await _names(s, Channel, f)
    after: tuple[date, int] | None = None
    while True:
        cond = [*_conv(f, channel_any=True), *_created_in(f)]
        if after is not None:
            cond.append(tuple_(RC.created_day, RC.conversation_id) > tuple_(*after))
        batch = await _all(
            s,
            select(RC, Contact.name)
            .outerjoin(Contact, Contact.id == RC.contact_id)
            .where(*cond)
            .order_by(RC.created_day, RC.conversation_id)
            .limit(page),
        )
        if not batch:
            return
        ids = [r.conversation_id for r, _ in batch]
        labels: dict[int, list[str]] = defaultdict(list)
        for cid, name in await s.execute(
            select(ConversationLabel.conversation_id, Label.name)
            .join(Label, Label.id == ConversationLabel.label_id)
            .where(ConversationLabel.conversation_id.in_(ids))
            .order_by(Label.name)
        ):
            labels[cid].append(name)
        rows = []
        for r, contact_name in batch:
            used = [int(c) for c in r.channels.strip(",").split(",") if c]
            rows.append(
                {
                    "conversation_id": r.conversation_id,
                    "created_at": ts(r.created_at),
                    "status": r.status,
                    "inbox": inboxes.get(r.inbox_id, f"deleted inbox #{r.inbox_id}"),
                    "contact_id": r.contact_id,
                    "contact_name": contact_name,
                    "first_channel": _named(chans, "channel", r.channel_id),
                    "channels": "; ".join(chans.get(c, f"deleted channel #{c}") for c in used),
                    "assignee": _named(agents_, "agent", r.assignee_id),
                    "team": _named(teams, "team", r.team_id),
                    "labels": "; ".join(labels.get(r.conversation_id, [])),
                    "first_response_seconds": r.first_response_seconds,
                    "first_response_business_seconds": r.first_response_bh_seconds,
                    "replies": r.reply_count,
                    "reply_seconds_mean": r.reply_seconds,
                    "resolved_at": ts(r.resolved_at),
                    "resolution_seconds": r.resolution_seconds,
                    "resolution_business_seconds": r.resolution_bh_seconds,
                    "messages_in": r.messages_in,
                    "messages_out": r.messages_out,
                    "failed": r.failed,
                    "fallbacks": r.fallbacks,
                    "cost": _money(r.cost),
                }
            )
        yield rows
        last = batch[-1][0]
        after = (last.created_day, last.conversation_id)
