"""Fill the report tables of a bulk-loaded PostgreSQL database in one streaming pass.

`tidings reports rebuild` recomputes conversations in batches through the ORM, which is right
for a live system but slow for a fresh 1M-conversation load on a shared machine. This reads
conversations and messages once each, in conversation order (two server-side cursors merged
here), runs the same `tidings.reports.rollup.compute` on each conversation, and COPYs the
results. Equivalent to a rebuild for bulk-loaded data: no status history (resolution time falls
back to the conversation's last update), no refused fallback timers, no business hours.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson

from tidings.reports.models import MEASURES
from tidings.reports.rollup import compute

PAGE = 20_000
CONV_COLS = [
    "conversation_id",
    "workspace_id",
    "inbox_id",
    "contact_id",
    "assignee_id",
    "team_id",
    "status",
    "channel_id",
    "channels",
    "channel_count",
    "created_at",
    "created_day",
    "first_inbound_at",
    "first_response_at",
    "first_response_seconds",
    "first_response_bh_seconds",
    "reply_count",
    "reply_seconds",
    "reply_bh_seconds",
    "resolved_at",
    "resolved_day",
    "resolution_seconds",
    "resolution_bh_seconds",
    "messages_in",
    "messages_out",
    "failed",
    "fallbacks",
    "cost",
    "waiting_since",
]
DAY_COLS = [
    "conversation_id",
    "day",
    "channel_id",
    "workspace_id",
    "inbox_id",
    "agent_id",
    "team_id",
    "contact_id",
    *MEASURES,
]
DAILY_COLS = ["workspace_id", "day", "inbox_id", "channel_id", "agent_id", "team_id", *MEASURES]


class Row:
    """Attribute access over an asyncpg record (what `compute` reads)."""

    __slots__ = ("_r",)

    def __init__(self, record: Any) -> None:
        self._r = record

    def __getattr__(self, name: str) -> Any:
        return self._r[name]


class Msg:
    __slots__ = (
        "channel_id",
        "cost_estimate",
        "direction",
        "extra",
        "id",
        "kind",
        "sender_agent_id",
        "sent_at",
        "status",
    )

    def __init__(self, r: Any) -> None:
        self.id = r[0]
        self.direction = r[2]
        self.kind = r[3]
        self.status = r[4]
        self.channel_id = r[5]
        self.sender_agent_id = r[6]
        self.sent_at = r[7]
        self.cost_estimate = r[8]
        raw = r[9]
        # Only fallbacks carry something the report reads; skip parsing "{}" ten million times.
        self.extra = orjson.loads(raw) if raw and "fallback_of" in raw else None


async def _pages(conn: Any, sql: str) -> AsyncIterator[list[Any]]:
    cur = await conn.cursor(sql)
    while True:
        rows = await cur.fetch(PAGE)
        if not rows:
            return
        yield rows


async def fill(conn: Any, progress: Any = None) -> int:
    started = time.perf_counter()
    daily: dict[tuple[Any, ...], dict[str, Any]] = {}
    conv_out: list[tuple[Any, ...]] = []
    day_out: list[tuple[Any, ...]] = []
    done = 0
    async with conn.transaction():
        for table in (
            "report_daily",
            "report_conversation_day",
            "report_conversation",
            "report_dirty",
        ):
            await conn.execute(f"TRUNCATE {table}")
        messages = _pages(
            conn,
            "SELECT id, conversation_id, direction, kind, status, channel_id, sender_agent_id, "
            "sent_at, cost_estimate, extra::text FROM message "
            "ORDER BY conversation_id, sent_at, id",
        )
        pending: list[Any] = []
        pos = 0

        async def messages_of(cid: int) -> list[Msg]:
            nonlocal pending, pos
            out = []
            while True:
                if pos >= len(pending):
                    pending = await anext(messages, [])
                    pos = 0
                    if not pending:
                        return out
                r = pending[pos]
                if r[1] < cid:
                    pos += 1
                    continue
                if r[1] > cid:
                    return out
                out.append(Msg(r))
                pos += 1

        async for convs in _pages(
            conn,
            "SELECT id, workspace_id, inbox_id, contact_id, assignee_id, team_id, status, "
            "created_at, updated_at FROM conversation ORDER BY id",
        ):
            for c in convs:
                conv = Row(c)
                result = compute(conv, await messages_of(c["id"]), [], set())
                stats = result.stats
                assert stats is not None
                conv_out.append(tuple(stats[k] for k in CONV_COLS))
                agent, team = c["assignee_id"] or 0, c["team_id"] or 0
                for (day, channel), values in result.days.items():
                    day_out.append(
                        (
                            c["id"],
                            day,
                            channel,
                            c["workspace_id"],
                            c["inbox_id"],
                            agent,
                            team,
                            c["contact_id"],
                            *(values[m] for m in MEASURES),
                        )
                    )
                    key = (c["workspace_id"], day, c["inbox_id"], channel, agent, team)
                    acc = daily.get(key)
                    if acc is None:
                        daily[key] = dict(values)
                    else:
                        for m in MEASURES:
                            acc[m] += values[m]
            done += len(convs)
            await conn.copy_records_to_table(
                "report_conversation", records=conv_out, columns=CONV_COLS
            )
            await conn.copy_records_to_table(
                "report_conversation_day", records=day_out, columns=DAY_COLS
            )
            conv_out.clear()
            day_out.clear()
            if progress is not None:
                progress(done, time.perf_counter() - started)
        await conn.copy_records_to_table(
            "report_daily",
            records=[
                (*k, *(Decimal(v[m]) if m == "cost" else v[m] for m in MEASURES))
                for k, v in daily.items()
            ],
            columns=DAILY_COLS,
        )
    await conn.execute("ANALYZE report_conversation, report_conversation_day, report_daily")
    return done
