"""The ingest worker: turns stored inbound events into contacts, conversations, messages and
status changes, each event isolated in a savepoint.

Work is split into lanes (docs/architecture.md, "Lanes"): the **customer** lane (messages,
edits, reactions, opt-outs, postbacks, channel events — what a person waits for) and the
**status** lane (delivery receipts). Each lane has its own claims — own order, own batch size,
own slice of worker time — so a broadcast's receipts never sit in front of a customer:

- fresh customer events (never tried) are drained first, in provider-timestamp order;
- customer events with history (retried after "not yet", or replayed from `failed`) come in a
  slice of their own, in the order they became due, so an old `occurred_at` cannot put a
  replay of yesterday's failures in front of a message that arrived a second ago;
- receipts come in time-bounded slices of big claims, in the order they became due (the
  forward-only status rule makes their order immaterial), and before each slice the loop
  drains due customer events again: a customer event waits at most one slice.

One process runs both lanes (`ingest`), or an operator runs processes per lane
(`ingest-customer`, `ingest-status`); claims take `FOR UPDATE SKIP LOCKED` on PostgreSQL so
several processes share a lane without taking the same event twice.

A failing event is kept with its error (state `failed`) and can be replayed after a fix;
an event that cannot be applied *yet* (a receipt ahead of its message) is retried with backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, select, update

from tidings.actions.base import Tx, transaction
from tidings.domain.enums import InboundLane, InboundState, Queue
from tidings.ingest.messages import apply_customer_rows
from tidings.ingest.statuses import apply_status_rows
from tidings.runtime import Runtime
from tidings.storage.db import FIRST_WRITER
from tidings.storage.models import InboundEvent
from tidings.storage.types import utcnow
from tidings.workers.loop import poll

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.5
# Turn-taking with webhook acknowledgements (what providers time): once webhooks are waiting for
# the group commit and the worker has spent SLICE_SECONDS on a batch, it commits what it has,
# gives the write lock back and waits (at most ACK_TURN_SECONDS) until those webhooks are
# committed before it goes on. It never rests otherwise: a fixed pause under any traffic
# capped processing at a fraction of the loop and let the agents' view fall seconds behind at
# only 50 messages/s (bench/latency).
SLICE_SECONDS = 0.01
ACK_TURN_SECONDS = 0.05
# A fresh customer claim (at most 50 events, usually one or two) gives the lock back to waiting
# webhooks only after this long, and then goes on at once: the group commit has the first turn
# at the lock anyway (`writer_turn(first=True)`). During a broadcast webhooks wait for a commit
# nearly all the time, so a customer claim cut after 10 ms then waited up to ACK_TURN_SECONDS
# for a queue that seldom empties (docs/benchmarks.md, "Broadcast storm").
CUSTOMER_ACK_SLICE_SECONDS = 0.05
# The status lane's slice: once it has run this long, a slice ends as soon as new inbound work
# was announced (a webhook committed here, or a wake-up from another process), which may be a
# customer's; the loop then drains the customer lane before the next slice. So a customer
# event waits for at most about one slice for the write lock (SQLite has one writer).
STATUS_SLICE_SECONDS = 0.05
# Without such news a slice goes on up to this long: short transactions, short row locks. Not
# on SQLite: its writer runs on the event loop's thread (storage/sqlite_inline.py), so a slice
# also holds the loop — no webhook is taken and no news can arrive until it ends — and there
# the slice is a hard STATUS_SLICE_SECONDS.
MAX_SLICE_SECONDS = 1.0
# A customer storm still leaves the status lane (and customer retries) a slice this often.
CUSTOMER_DRAIN_SECONDS = 1.0

LaneApply = Callable[[Tx, Sequence[InboundEvent], Callable[[], bool]], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Claim:
    """One kind of claim: which rows of which lane, in what order, how many, for how long."""

    name: str
    lane: InboundLane
    fresh: bool | None  # True: never tried; False: tried before (retry/replay); None: both
    limit: int  # the most rows one claim takes
    order: tuple[Any, ...]
    # The claim stops applying rows after this long (the rest stays for the next round).
    slice_seconds: float | None

    def where(self, now: datetime) -> ColumnElement[bool]:
        cond = (InboundEvent.lane == self.lane) & (InboundEvent.state == InboundState.PENDING)
        # Fresh: never tried and never failed. A retry carries its attempts and the reason it
        # waits; a replayed event keeps the error it failed with (`replay`).
        fresh = (InboundEvent.attempts == 0) & InboundEvent.error.is_(None)
        if self.fresh is True:
            # Due since it was stored (next_attempt_at = received_at): no time test, so the
            # claim walks (lane, state, occurred_at, id) in its order and stops after `limit`
            # (migration 0017_inbound_claim_order); a time range would make the planner pick
            # (lane, state, next_attempt_at) and sort the lane's whole backlog.
            return cond & fresh
        cond &= InboundEvent.next_attempt_at <= now
        if self.fresh is False:
            cond &= ~fresh
        return cond


# Small claims: a customer event is never held in a big batch behind others. Provider order
# (occurred_at) keeps a conversation's messages in the order the customer wrote them even when
# the provider delivered the webhooks out of order.
CUSTOMER_FRESH = Claim(
    "customer",
    InboundLane.CUSTOMER,
    fresh=True,
    limit=50,
    order=(InboundEvent.occurred_at, InboundEvent.id),
    slice_seconds=None,
)
# Events with history, in the order they became due (retry backoff, or the moment of replay).
CUSTOMER_RETRIES = Claim(
    "customer-retries",
    InboundLane.CUSTOMER,
    fresh=False,
    limit=50,
    order=(InboundEvent.next_attempt_at, InboundEvent.id),
    slice_seconds=STATUS_SLICE_SECONDS,
)
# Big claims in index order (lane, state, next_attempt_at): receipts are applied as sets.
STATUS = Claim(
    "status",
    InboundLane.STATUS,
    fresh=None,
    limit=500,
    order=(InboundEvent.next_attempt_at, InboundEvent.id),
    slice_seconds=STATUS_SLICE_SECONDS,
)

LANES: tuple[InboundLane, ...] = (InboundLane.CUSTOMER, InboundLane.STATUS)


# A sliced claim takes about what its slices have been applying (process-wide: the pace is the
# machine's and the lane processor's): a claim of 500 rows cut after a handful would lock and
# load hundreds of rows for nothing. Cut short, the next claim is 1.5 times what was applied; run
# to its end, the next is twice as big — up to the claim's limit.
MIN_CLAIM = 10
_sizes: dict[str, int] = {}


def claim_size(claim: Claim) -> int:
    """How many rows the next `claim` takes."""
    if claim.slice_seconds is None:
        return claim.limit
    return _sizes.get(claim.name, min(claim.limit, 50))


def _measured(claim: Claim, size: int, claimed: int, handled: int) -> None:
    if claim.slice_seconds is None:
        return
    if handled < claimed:
        _sizes[claim.name] = max(MIN_CLAIM, int(handled * 1.5))
    elif claimed == size:
        _sizes[claim.name] = min(claim.limit, size * 2)


def claim_statement(claim: Claim, now: datetime, limit: int) -> Select[InboundEvent]:
    """The rows `claim` takes at `now`: its lane's first `limit` due rows in its order."""
    return select(InboundEvent).where(claim.where(now)).order_by(*claim.order).limit(limit)


@dataclass(frozen=True, slots=True)
class Claimed:
    handled: int  # rows applied (done, failed or rescheduled)
    more: bool  # more may be waiting in this claim
    acks_waiting: bool  # stopped early because webhooks were waiting for the write lock


async def process_claim(rt: Runtime, claim: Claim, *, interruptible: bool = True) -> Claimed:
    """Claim up to `claim_size(claim)` due rows and apply them in one transaction. A sliced
    claim stops after MAX_SLICE_SECONDS, or — when `interruptible` (a customer lane is served
    by the same loop) — after its slice once new inbound work was announced."""
    now = utcnow()
    limit = claim_size(claim)
    due = claim.where(now)
    if not await rt.db.has_rows(select(InboundEvent.id).where(due)):
        return Claimed(0, False, False)
    acks = False
    async with transaction(rt) as tx:
        rows = (
            await tx.session.scalars(
                claim_statement(claim, now, limit).with_for_update(**rt.db.skip_locked())
            )
        ).all()
        started = time.monotonic()
        wakes = rt.wake_counts["ingest"]
        longest = MAX_SLICE_SECONDS if not rt.db.is_sqlite else 0.0
        customers_first = claim is CUSTOMER_FRESH
        ack_slice = CUSTOMER_ACK_SLICE_SECONDS if customers_first else SLICE_SECONDS

        def should_yield() -> bool:
            nonlocal acks
            elapsed = time.monotonic() - started
            # Acknowledging webhooks comes first: give the write lock back (SQLite has one
            # writer) and let the untouched rest of the batch wait for the next round.
            if rt.committer.waiting and elapsed > ack_slice:
                acks = not customers_first
                return True
            if claim.slice_seconds is None or elapsed <= claim.slice_seconds:
                return False
            news = interruptible and rt.wake_counts["ingest"] != wakes
            return news or elapsed > longest

        apply: LaneApply = (
            apply_status_rows if claim.lane == InboundLane.STATUS else apply_customer_rows
        )
        handled = await apply(tx, rows, should_yield) if rows else 0
        _measured(claim, limit, len(rows), handled)
    more = len(rows) == limit or handled < len(rows)
    return Claimed(handled, more, acks)


async def _step(rt: Runtime, claim: Claim, interruptible: bool = True) -> bool:
    """One claim, then the acknowledgements' turn if they were waiting. Whether more waits."""
    claimed = await process_claim(rt, claim, interruptible=interruptible)
    if claimed.acks_waiting:
        await rt.committer.drained(ACK_TURN_SECONDS)
    return claimed.more


async def _drain_customers(rt: Runtime) -> bool:
    """Fresh customer events until none is due (or CUSTOMER_DRAIN_SECONDS have passed).
    Returns whether some are still waiting. Once none is left (and no customer webhook came
    in since the last look), the background loops' writers may go on (`PriorityHold`)."""
    deadline = time.monotonic() + CUSTOMER_DRAIN_SECONDS
    first = FIRST_WRITER.set(True)  # ahead of queued writers for SQLite's write lock
    try:
        while True:
            generation = rt.db.priority.generation
            if not await _step(rt, CUSTOMER_FRESH):
                if not rt.committer.customers_waiting:  # one is on its way: keep holding
                    rt.db.priority.end(generation)
                return False
            if time.monotonic() > deadline:
                return True
    finally:
        FIRST_WRITER.reset(first)


async def process_round(rt: Runtime, lanes: Sequence[InboundLane] = LANES) -> bool:
    """One round of the loop over `lanes`: before each slow slice (customer retries, one status
    slice) the due fresh customer events are drained. Returns whether more may be waiting."""
    more = False
    customers = InboundLane.CUSTOMER in lanes
    slow = [CUSTOMER_RETRIES] if customers else []
    if InboundLane.STATUS in lanes:
        slow.append(STATUS)
    for claim in slow:
        if customers:
            more |= await _drain_customers(rt)
        more |= await _step(rt, claim, interruptible=customers)
    return more


async def process_batch(rt: Runtime) -> bool:
    """One round over both lanes (tests and benchmarks drain with `while await ...`)."""
    return await process_round(rt, LANES)


async def replay(
    rt: Runtime, *, event_ids: list[int] | None = None, channel_id: int | None = None
) -> int:
    """Put failed events back in the queue (after a fix). Returns how many.

    A replayed event gets the retry budget (`ingest/rows.py`) anew (`attempts` = 0) and keeps
    the error it failed with until it is applied: that error is what marks it as not fresh, so
    it goes through the retry slice in the order of replay, never ahead of fresh customer
    events because of an old provider timestamp."""
    stmt = update(InboundEvent).where(InboundEvent.state == InboundState.FAILED)
    if event_ids:
        stmt = stmt.where(InboundEvent.id.in_(event_ids))
    if channel_id is not None:
        stmt = stmt.where(InboundEvent.channel_id == channel_id)
    async with rt.db.write() as s:
        result = await s.execute(
            stmt.values(state=InboundState.PENDING, attempts=0, next_attempt_at=utcnow())
        )
    rt.wake(Queue.INGEST)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def run(rt: Runtime, lanes: Sequence[InboundLane] = LANES) -> None:
    # Customer webhooks hold the background loops' writes back until this loop has applied
    # them (storage/db.py `PriorityHold`): only where this loop serves the customer lane.
    if InboundLane.CUSTOMER in lanes:
        rt.db.priority.enabled = True
    try:
        await poll(
            rt,
            lambda rt: process_round(rt, lanes),
            queue=Queue.INGEST,
            idle=IDLE_POLL_SECONDS,
            what="ingest round",
        )
    finally:
        if InboundLane.CUSTOMER in lanes:
            rt.db.priority.enabled = False
            rt.db.priority.end(rt.db.priority.generation)
