"""The one status path: every report of an outbound message's status — a provider's receipt
(sent, delivered, read, failed) or the delivery worker's send answer — is applied here, as a
set (docs/architecture.md, "The status path").

A batch is applied in a handful of statements whatever its size:

1. one read resolves the reports to messages — by (channel, provider message id), by our own
   id when the caller knows it (the send answer), or by the id the provider echoed back when a
   receipt overtook our record of the send (`our_message_ref`);
2. each message's reports collapse to the furthest status (`FORWARD_RANK`: the forward-only
   rule as a total order, so the outcome does not depend on the order reports arrive in);
3. one `UPDATE message … FROM (VALUES …)` moves them, with the forward-only rule in its WHERE
   clause: a concurrent worker's later status is never moved back, and a duplicate changes
   nothing; RETURNING says which rows really moved;
4. the campaign recipients follow in one lookup and one UPDATE per state
   (`campaign_recipients.on_messages_status`); the report marks are the `message` triggers'
   (migration 0008_reports), one row per moved message, inside the same statement;
5. one live event per conversation: `message.updated` when one of its messages moved, else
   `messages.updated` with all of them (outgoing webhooks still get one `message.updated` per
   message, `actions.base`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from tidings.actions.base import Tx
from tidings.actions.campaign_recipients import on_messages_status
from tidings.domain import live_events
from tidings.domain.enums import MessageStatus
from tidings.domain.errors import RetryLater
from tidings.domain.events import StatusUpdate
from tidings.runtime import ChannelInfo
from tidings.serialize import message_dict, ts
from tidings.storage.models import Conversation, Message, table_of
from tidings.storage.types import UTCDateTime, utcnow

# The forward-only rule (`domain.enums.status_moves_forward`) is a total order: a status may
# replace another exactly when its rank is higher. (`failed` replaces queued/sent; delivered
# and read replace failed; a failure never undoes delivered/read.) tests/core/
# test_status_batch.py checks the two agree on every pair. A status not listed (an inbound
# message's `received`) never moves.
FORWARD_RANK: dict[MessageStatus, int] = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENT: 1,
    MessageStatus.FAILED: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.READ: 4,
}
_NEVER = 99
DEFAULT_FAILURE = "The provider could not deliver this message."

# The rank of the stored status, in SQL (the WHERE clause of the UPDATE).
_RANK_SQL = (
    "CASE message.status "
    + " ".join(f"WHEN '{s.value}' THEN {r}" for s, r in FORWARD_RANK.items())
    + f" ELSE {_NEVER} END"
)


@dataclass(frozen=True, slots=True)
class StatusReport:
    """One report of a message's status.

    `message_id` is our id when the reporter knows it (the delivery worker's send answer); a
    receipt names the message by `provider_message_id` on `channel_id`, and may carry
    `our_message_ref`, the id the provider echoed back, for when it overtook the send answer.
    A `provider_message_id` is also recorded on a message that has none yet."""

    status: MessageStatus
    channel_id: int | None = None
    provider_message_id: str | None = None
    message_id: int | None = None
    our_message_ref: str | None = None
    error_code: str | None = None
    error_reason: str | None = None

    @classmethod
    def of(cls, channel_id: int, event: StatusUpdate) -> StatusReport:
        """A receipt the channel `channel_id` delivered."""
        return cls(
            channel_id=channel_id,
            status=event.status,
            provider_message_id=event.provider_message_id,
            our_message_ref=event.our_message_ref,
            error_code=event.error_code,
            error_reason=event.error_reason,
        )


@dataclass(slots=True)
class Applied:
    """What a batch did. `unknown`: indexes of the reports that matched no message (a receipt
    ahead of its message: the caller retries it later). `moved`: message id → the message as
    it is now (status, error fields, provider id), for every message the batch changed."""

    unknown: list[int] = field(default_factory=list)
    moved: dict[int, Moved] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Moved:
    """A message as the batch left it (what the recipient hook and the callers read)."""

    id: int
    conversation_id: int
    status: str
    error_code: str | None
    error_reason: str | None
    provider_message_id: str | None
    updated_at: datetime
    extra: dict[str, Any]


def rank(status: str) -> int:
    try:
        return FORWARD_RANK.get(MessageStatus(status), _NEVER)
    except ValueError:
        return _NEVER


@dataclass(slots=True)
class _Target:
    """A message's collapsed reports: the furthest status and what goes with it."""

    status: MessageStatus
    error_code: str | None = None
    error_reason: str | None = None
    provider_message_id: str | None = None


async def do_apply_statuses(tx: Tx, reports: Sequence[StatusReport]) -> Applied:
    """Apply a batch of status reports in a handful of statements (module docstring)."""
    out = Applied()
    if not reports:
        return out
    rows = await _resolve(tx, reports)
    by_pid = {(r.channel_id, r.provider_message_id): r for r in rows.values()}
    targets: dict[int, _Target] = {}
    for index, report in enumerate(reports):
        row = _match(report, rows, by_pid)
        if row is None:
            out.unknown.append(index)
            continue
        target = targets.get(row.id)
        if target is None:
            target = targets[row.id] = _Target(report.status)
        elif rank(report.status) > rank(target.status):
            target.status = report.status
        if report.status == MessageStatus.FAILED and target.status == MessageStatus.FAILED:
            target.error_code = report.error_code
            target.error_reason = report.error_reason or DEFAULT_FAILURE
        if row.provider_message_id is None and target.provider_message_id is None:
            target.provider_message_id = report.provider_message_id
    # Only what can change anything reaches the UPDATE (a duplicate of the stored status does
    # not); its WHERE clause decides again against the row as it is then.
    todo = {
        mid: t
        for mid, t in targets.items()
        if rank(t.status) > rank(rows[mid].status)
        or (t.provider_message_id is not None and rows[mid].provider_message_id is None)
    }
    if not todo:
        return out
    now = utcnow()
    for mid, status, code, reason, pid in await _update(tx, todo, now):
        row = rows[mid]
        out.moved[mid] = Moved(
            mid, row.conversation_id, status, code, reason, pid, now, row.extra or {}
        )
    await on_messages_status(tx, list(out.moved.values()))
    _emit(tx, rows, out.moved)
    return out


async def do_apply_status(tx: Tx, channel: ChannelInfo, event: StatusUpdate) -> bool:
    """One receipt (the per-event path, and a receipt isolated from a failed set): a batch of
    one. Returns whether the message changed; raises RetryLater when no message matches yet."""
    applied = await do_apply_statuses(tx, [StatusReport.of(channel.id, event)])
    if applied.unknown:
        raise RetryLater(f"no message with provider id {event.provider_message_id} yet")
    return bool(applied.moved)


async def _resolve(tx: Tx, reports: Sequence[StatusReport]) -> dict[int, Any]:
    """The reports' messages (all the columns an event shows, with the conversation's workspace
    and inbox), by id, in one read."""
    by_channel: dict[int, set[str]] = {}
    ids: set[int] = set()
    for r in reports:
        if r.message_id is not None:
            ids.add(r.message_id)
        elif r.provider_message_id is not None and r.channel_id is not None:
            by_channel.setdefault(r.channel_id, set()).add(r.provider_message_id)
        if r.message_id is None and r.our_message_ref and r.our_message_ref.isdigit():
            ids.add(int(r.our_message_ref))
    m, c = table_of(Message), table_of(Conversation)
    # One condition per channel on the (channel_id, provider_message_id) index, and one on the
    # primary key; usually a single channel.
    conds: list[ColumnElement[bool]] = [
        and_(m.c.channel_id == cid, m.c.provider_message_id.in_(sorted(pids)))
        for cid, pids in by_channel.items()
    ]
    if ids:
        conds.append(m.c.id.in_(sorted(ids)))
    stmt = (
        select(m, c.c.workspace_id, c.c.inbox_id)
        .join(c, c.c.id == m.c.conversation_id)
        .where(or_(*conds))
    )
    if not tx.rt.db.is_sqlite:
        # Lock the messages in id order before the UPDATE takes them in its join's order: two
        # workers whose batches share messages queue instead of deadlocking.
        stmt = stmt.order_by(m.c.id).with_for_update(of=m)
    result = await tx.session.execute(stmt)
    return {row.id: row for row in result.all()}


def _match(report: StatusReport, rows: dict[int, Any], by_pid: dict[Any, Any]) -> Any:
    if report.message_id is not None:
        return rows.get(report.message_id)
    row = by_pid.get((report.channel_id, report.provider_message_id))
    if row is None and report.our_message_ref and report.our_message_ref.isdigit():
        # The receipt overtook our record of the send (the provider answered the webhook before
        # our send call returned): the provider echoed our own id, so we can still match it.
        row = rows.get(int(report.our_message_ref))
        if row is not None and (
            row.channel_id != report.channel_id or row.provider_message_id is not None
        ):
            row = None
    return row


async def _update(
    tx: Tx, todo: dict[int, _Target], now: datetime
) -> list[tuple[int, str, str | None, str | None, str | None]]:
    """One `UPDATE message … FROM (VALUES …)` for the batch. Returns the rows it changed.

    Written as a CTE so that one statement serves PostgreSQL and SQLite (≥ 3.35 for
    RETURNING; SQLite takes no column list after `(VALUES …) AS v`). The casts type the
    parameters for PostgreSQL and are harmless on SQLite. Sent to the driver as it is, with
    positional parameters: parsing a text() of thousands of named parameters cost more than
    running the statement (bench/statuses)."""
    conn = await tx.session.connection()
    dialect = conn.dialect
    numbered = dialect.paramstyle == "numeric_dollar"
    counter = iter(range(1, 6 * len(todo) + 2))

    def p(cast: str) -> str:
        mark = f"${next(counter)}" if numbered else "?"
        return f"CAST({mark} AS {cast})"

    params: list[Any] = []
    tuples = []
    for mid, t in sorted(todo.items()):  # id order: no deadlock between workers
        tuples.append(
            f"({p('BIGINT')}, {p('VARCHAR')}, {p('INTEGER')}, {p('VARCHAR')}, {p('TEXT')}, "
            f"{p('VARCHAR')})"
        )
        params += [
            mid,
            t.status.value,
            FORWARD_RANK[t.status],
            t.error_code,
            t.error_reason,
            t.provider_message_id,
        ]
    stamp = f"${next(counter)}" if numbered else "?"  # typed by the column it is assigned to
    to_db = _UTC.bind_processor(dialect)
    params.append(to_db(now) if to_db is not None else now)
    moves = f"({_RANK_SQL}) < v.fwd"
    # Only this module's constants and placeholders are spliced in; values are bound.
    sql = (
        "WITH v (id, status, fwd, code, reason, pid) AS (VALUES "  # noqa: S608
        + ", ".join(tuples)
        + ") UPDATE message SET "  # noqa: S608
        f"status = CASE WHEN {moves} THEN v.status ELSE message.status END, "
        f"error_code = CASE WHEN {moves} AND v.status = 'failed' THEN v.code "
        "ELSE message.error_code END, "
        f"error_reason = CASE WHEN {moves} AND v.status = 'failed' THEN v.reason "
        "ELSE message.error_reason END, "
        "provider_message_id = COALESCE(message.provider_message_id, v.pid), "
        f"updated_at = {stamp} "
        "FROM v WHERE message.id = v.id AND "
        f"({moves} OR (message.provider_message_id IS NULL AND v.pid IS NOT NULL)) "
        "RETURNING message.id, message.status, message.error_code, message.error_reason, "
        "message.provider_message_id"
    )
    result = await conn.exec_driver_sql(sql, tuple(params))
    rows: Sequence[Any] = result.all()
    return [(int(r[0]), str(r[1]), r[2], r[3], r[4]) for r in rows]


_UTC = UTCDateTime()


def _emit(tx: Tx, rows: dict[int, Any], moved: dict[int, Moved]) -> None:
    """One live event per conversation for the batch (module docstring)."""
    by_conv: dict[int, list[dict[str, Any]]] = {}
    where: dict[int, Any] = {}  # a message row of the conversation (workspace, inbox)
    for mid, it in moved.items():
        row = rows[mid]
        event = message_dict(row)
        event.update(
            status=it.status,
            error_code=it.error_code,
            error_reason=it.error_reason,
            provider_message_id=it.provider_message_id,
            updated_at=ts(it.updated_at),
        )
        by_conv.setdefault(row.conversation_id, []).append(event)
        where[row.conversation_id] = row
    for conv_id, events in by_conv.items():
        if len(events) == 1:
            tx.emit_for(live_events.MESSAGE_UPDATED(events[0]), where[conv_id])
        else:
            events.sort(key=lambda e: int(e["id"]))
            tx.emit_for(
                live_events.MESSAGES_UPDATED({"conversation_id": conv_id, "messages": events}),
                where[conv_id],
            )
