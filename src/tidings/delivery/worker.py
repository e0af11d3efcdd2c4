"""The delivery worker: claims outbox rows, honours rate limits, sends through the adapter and
records the outcome.

- Order: a delivery is claimed only when no earlier delivery of the same conversation is still
  pending or sending, so one customer's messages leave in the order they were written.
- Crash safety: a claim is a lease. A worker that dies mid-send leaves `sending` rows whose
  lease expires; they go back to `pending`. A send that never reached the provider is thus sent
  exactly once after the restart. (One that reached the provider just before the crash may be
  sent again; adapters pass our message id along where the provider allows — WhatsApp's
  `biz_opaque_callback_data`, the API channel's Idempotency-Key — so receipts still match.)
- Pause: a paused campaign's queued deliveries are `held` (`actions.campaigns.check_move`), so
  the claim never sees them; a delivery claimed just before the pause is checked against the
  paused campaigns (`Paused`, a set of ids refreshed every PAUSED_REFRESH_SECONDS: one small
  query per process, one set lookup per send) right before the provider call, and is held
  instead of sent if its campaign was paused meanwhile.
- Retries: retriable outcomes back off exponentially with jitter (capped at MAX_BACKOFF_SECONDS,
  so a provider that comes back is used within a minute), or wait what the provider's
  Retry-After asks. A message fails with the last reason once it has been retrying for
  RETRY_WINDOW_SECONDS (and tried at least MIN_ATTEMPTS times), or after MAX_ATTEMPTS: an outage
  of minutes costs no replies, one of hours does not keep them queued forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, exists, literal_column, select, update

from tidings.actions.base import transaction
from tidings.actions.outbound import do_record_failures, do_record_sent
from tidings.campaigns import throttle as campaign_throttle
from tidings.channels.base import OutboundMessage, Permanent, Retriable, SendOutcome, Sent
from tidings.channels.optional import MulticastSender
from tidings.delivery import reply_context
from tidings.domain.enums import DeliveryState, MessageKind, Queue
from tidings.media.outbound import as_outbound
from tidings.metrics import DELIVERIES, PROVIDER_LATENCY
from tidings.ratelimit import channel_rate, tier_window
from tidings.runtime import ChannelInfo, Runtime
from tidings.storage.models import Attachment, Campaign, Delivery, Message, table_of
from tidings.storage.types import utcnow

log = logging.getLogger(__name__)

BATCH = 50
# A claim right after a full one takes this many (a busy queue: fewer, larger claims).
BUSY_BATCH = 200
# Provider requests in flight per process (configurable: a slow provider needs more to keep a
# fast process busy; each is a socket and a task).
CONCURRENCY = int(os.environ.get("TIDINGS_DELIVERY_CONCURRENCY", "32"))
# Most outcomes recorded in one transaction.
GROUP = 200
# Under load (the last group held GATHER_FROM outcomes or more), a group waits up to
# GATHER_SECONDS for GATHER_TARGET of them: a group's fixed cost (its transaction, reads and
# commit) is most of recording, so larger groups are cheaper per send. Light traffic (an
# agent's reply, a campaign capped at 80/s) is recorded as it comes: waiting there saves
# nothing and, measured, cost a capped campaign 0.6 % of its rate.
GATHER_FROM = 8
GATHER_TARGET = 100
GATHER_SECONDS = 0.05
# How long a claim is held before another worker may take the delivery over (a crashed
# worker's sends resume after this). Configurable for operations and tests.
LEASE_SECONDS = float(os.environ.get("TIDINGS_DELIVERY_LEASE_SECONDS", "60"))
# Retrying stops when a message has waited RETRY_WINDOW_SECONDS since it was queued (and was
# tried at least MIN_ATTEMPTS times), or after MAX_ATTEMPTS, whichever comes first.
RETRY_WINDOW_SECONDS = float(os.environ.get("TIDINGS_DELIVERY_RETRY_WINDOW_SECONDS", "3600"))
MAX_BACKOFF_SECONDS = float(os.environ.get("TIDINGS_DELIVERY_MAX_BACKOFF_SECONDS", "60"))
MIN_ATTEMPTS = 3
MAX_ATTEMPTS = 100
IDLE_POLL_SECONDS = 0.5
# How stale the delivery worker's view of paused campaigns may be (see `Paused`).
PAUSED_REFRESH_SECONDS = 0.25
# On shutdown, how long sends under way may take to finish (the runtime allows 5 s in all).
SHUTDOWN_GRACE_SECONDS = 2.0


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def retry_delay(attempts: int, outcome: Retriable) -> float:
    if outcome.retry_after is not None and outcome.retry_after > 0:
        return outcome.retry_after
    return min(MAX_BACKOFF_SECONDS, 2.0 ** max(0, attempts - 1)) * random.uniform(0.75, 1.25)


def should_give_up(attempts: int, queued_at: datetime, now: datetime) -> bool:
    if attempts >= MAX_ATTEMPTS:
        return True
    waited = (now - queued_at).total_seconds()
    return attempts >= MIN_ATTEMPTS and waited >= RETRY_WINDOW_SECONDS


async def recover_expired_leases(rt: Runtime) -> int:
    async with rt.db.write() as s:
        result = await s.execute(
            update(Delivery)
            .where(Delivery.state == DeliveryState.SENDING, Delivery.lease_until < utcnow())
            .values(
                state=DeliveryState.PENDING,
                claimed_by=None,
                lease_until=None,
                next_attempt_at=utcnow(),
            )
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(slots=True)
class Job:
    """A claimed delivery with what sending it needs, loaded with the claim (no per-send reads):
    rows, not ORM objects — `delivery` (id, message_id, channel_id, recipient) and `message`
    (id, conversation_id, kind, body, extra)."""

    delivery: Row[int, int, int, str]
    message: Row[int, int, str, str | None, dict[str, Any]]
    attachments: list[Attachment] = field(default_factory=list)


def due_terms(rt: Runtime, now: datetime) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """The claim's conditions: (due: pending and its time has come, blocked: an earlier
    delivery of its conversation is pending or sending). Core on the tables: the ORM's
    statement machinery cost more than SQLite's work here.

    The claim walks pending rows in id order and stops after its limit (index (state, id),
    migration 0014). SQLite's planner, without statistics, prefers (state, next_attempt_at),
    and then tests and sorts every pending row (10 ms per claim at 20,000 queued): a unary +
    on that column takes its term out of index use (sqlite.org/optoverview.html,
    "Disqualifying WHERE clause terms using unary-+")."""
    d = table_of(Delivery)
    earlier = d.alias("earlier")
    blocked = exists().where(
        and_(
            earlier.c.conversation_id == d.c.conversation_id,
            earlier.c.id < d.c.id,
            earlier.c.state.in_((DeliveryState.PENDING, DeliveryState.SENDING)),
        )
    )
    next_at = (
        literal_column("+delivery.next_attempt_at", d.c.next_attempt_at.type)
        if rt.db.is_sqlite
        else d.c.next_attempt_at
    )
    return (d.c.state == DeliveryState.PENDING) & (next_at <= now), blocked


def claim_statement(
    rt: Runtime, now: datetime, limit: int, channel_id: int | None = None
) -> Select[int, int, int, str]:
    """The claim's read: the first `limit` due, unblocked deliveries in id order (of one
    channel, when `channel_id` is given: filling a multicast)."""
    d = table_of(Delivery)
    due, blocked = due_terms(rt, now)
    if channel_id is not None:
        due = due & (d.c.channel_id == channel_id)
    return (
        select(d.c.id, d.c.message_id, d.c.channel_id, d.c.recipient)
        .where(due, ~blocked)
        .order_by(d.c.id)
        .limit(limit)
        .with_for_update(**rt.db.skip_locked())
    )


async def claim(
    rt: Runtime,
    me: str,
    limit: int = BATCH,
    *,
    look_first: bool = True,
    channel_id: int | None = None,
) -> list[Job]:
    """Lease up to `limit` due deliveries (of one channel, with `channel_id`). `look_first`:
    ask a read connection first whether any is due (an idle poll must not take SQLite's write
    lock); the loop skips the look right after a full claim, when more are almost surely
    waiting."""
    now = utcnow()
    d, m = table_of(Delivery), table_of(Message)
    due, _blocked = due_terms(rt, now)
    if look_first and not await rt.db.has_rows(select(d.c.id).where(due)):
        return []
    async with rt.db.write() as s:
        rows = (await s.execute(claim_statement(rt, now, limit, channel_id))).all()
        if not rows:
            return []
        await s.execute(
            update(d)
            .where(d.c.id.in_([r.id for r in rows]))
            .values(
                state=DeliveryState.SENDING,
                claimed_by=me,
                lease_until=now + timedelta(seconds=LEASE_SECONDS),
                attempts=d.c.attempts + 1,
            )
        )
        message_ids = [r.message_id for r in rows]
        messages = {
            r.id: r
            for r in await s.execute(
                select(m.c.id, m.c.conversation_id, m.c.kind, m.c.body, m.c.extra).where(
                    m.c.id.in_(message_ids)
                )
            )
        }
        files: dict[int, list[Attachment]] = {}
        for a in await s.scalars(
            select(Attachment).where(Attachment.message_id.in_(message_ids)).order_by(Attachment.id)
        ):
            files.setdefault(a.message_id, []).append(a)
        return [
            Job(r, messages[r.message_id], files.get(r.message_id, []))
            for r in rows
            if r.message_id in messages
        ]


class Held:
    """Not an outcome of the provider: the message's campaign was paused after the claim and
    before the send, so the delivery goes back to `held` (not counted as an attempt)."""


class Paused:
    """The ids of paused campaigns, as this process last read them: the check right before a
    send (claimed deliveries may wait a while for rate-limit slots). Refreshed at
    most every PAUSED_REFRESH_SECONDS by the sends themselves (one indexed
    `SELECT id FROM campaign WHERE state = 'paused'` per interval and process)."""

    def __init__(self) -> None:
        self.ids: frozenset[int] = frozenset()
        self._next = 0.0

    async def holds(self, rt: Runtime, extra: dict[str, Any] | None) -> bool:
        """Whether this message belongs to a campaign that is paused now (messages of no
        campaign: one dict lookup)."""
        tag = (extra or {}).get("campaign")
        if not isinstance(tag, dict):
            return False
        now = time.monotonic()
        if now >= self._next:
            self._next = now + PAUSED_REFRESH_SECONDS
            try:
                async with rt.db.read() as s:
                    self.ids = frozenset(
                        (
                            await s.scalars(select(Campaign.id).where(Campaign.state == "paused"))
                        ).all()
                    )
            except Exception:
                log.exception("reading paused campaigns failed; using the last answer")
        return tag.get("id") in self.ids


def outbound_message(
    rt: Runtime, channel: ChannelInfo, job: Job, context: Mapping[str, Any] | None = None
) -> OutboundMessage:
    delivery, message = job.delivery, job.message
    return OutboundMessage(
        message_id=message.id,
        conversation_id=message.conversation_id,
        to=delivery.recipient,
        kind=MessageKind(message.kind),
        text=message.body,
        extra=message.extra or {},
        template=(message.extra or {}).get("template"),
        webhook_url=rt.settings.webhook_url(channel.kind, channel.id),
        attachments=as_outbound(rt, job.attachments),
        reply_context=context or {},
    )


@dataclass(slots=True)
class Multicast:
    """Claimed campaign messages with the same content on one multicast channel: one
    provider call (`channels/optional.py`)."""

    channel: ChannelInfo
    jobs: list[Job]
    messages: list[OutboundMessage]


def multicast_candidate(job: Job) -> bool:
    """A campaign's message without a send-rate cap: a capped campaign is meant to trickle,
    and a call of hundreds would spend its budget at once."""
    tag = (job.message.extra or {}).get("campaign")
    return isinstance(tag, dict) and not tag.get("rate")


async def plan_multicasts(
    rt: Runtime, me: str, jobs: list[Job]
) -> tuple[list[Job], list[Multicast]]:
    """Split a claim into single sends and multicasts. Campaign messages on a channel whose
    adapter is a `MulticastSender` are grouped by (campaign, the adapter's content key); a
    group that is not full takes more of that channel's due deliveries (one extra claim per
    channel), so a large campaign goes in calls of up to `multicast_max` rather than of one
    claim's size. A group of one goes as a single send. Other messages cost a dict lookup
    (their campaign tag) and, once per channel and claim, a cached channel lookup."""
    singles: list[Job] = []
    groups: dict[tuple[int, object, str], Multicast] = {}
    filled: set[int] = set()
    capable: dict[int, bool] = {}  # channel id -> its adapter is a MulticastSender
    pending = list(jobs)
    while pending:
        for job in pending:
            channel_id = job.delivery.channel_id
            if capable.get(channel_id) is False or not multicast_candidate(job):
                singles.append(job)
                continue
            channel = await rt.channels.get(channel_id)
            adapter = channel.adapter if channel is not None else None
            capable[channel_id] = isinstance(adapter, MulticastSender)
            if channel is None or not isinstance(adapter, MulticastSender):
                singles.append(job)
                continue
            outbound = outbound_message(rt, channel, job)
            key = adapter.multicast_key(channel.config, outbound)
            if key is None:
                singles.append(job)
                continue
            campaign_id = (job.message.extra or {})["campaign"].get("id")
            group = groups.setdefault((channel.id, campaign_id, key), Multicast(channel, [], []))
            group.jobs.append(job)
            group.messages.append(outbound)
        pending = []
        for group in list(groups.values()):
            adapter = group.channel.adapter
            assert isinstance(adapter, MulticastSender)
            room = adapter.multicast_max - len(group.jobs) % adapter.multicast_max
            if group.channel.id in filled or room == adapter.multicast_max:
                continue
            filled.add(group.channel.id)
            try:
                more = await claim(rt, me, room, look_first=False, channel_id=group.channel.id)
            except Exception:  # the group goes as it is; the next claim takes the rest
                log.exception("filling a multicast on channel %s failed", group.channel.id)
                continue
            pending.extend(more)
    calls: list[Multicast] = []
    for group in groups.values():
        adapter = group.channel.adapter
        assert isinstance(adapter, MulticastSender)
        size = adapter.multicast_max
        if len(group.jobs) == 1:
            singles.extend(group.jobs)
            continue
        for i in range(0, len(group.jobs), size):
            calls.append(
                Multicast(group.channel, group.jobs[i : i + size], group.messages[i : i + size])
            )
    return singles, calls


async def send_multicast(
    rt: Runtime, call: Multicast, paused: Paused | None = None
) -> list[SendOutcome | Held]:
    """One multicast call: its own window in the shared rate limiter (the provider counts
    the multicast endpoint apart from single sends), the pause check, the call."""
    channel = call.channel
    adapter = channel.adapter
    assert isinstance(adapter, MulticastSender)
    limit, window, spaced = tier_window(adapter.multicast_rate_per_second)
    await rt.rate_limiter.acquire_window(
        f"channel-multicast:{channel.id}", limit, window, spaced=spaced
    )
    if paused is not None and await paused.holds(rt, call.jobs[0].message.extra):
        return [Held() for _ in call.jobs]
    started = time.perf_counter()
    outcomes: list[SendOutcome | Held]
    try:
        sent = await adapter.send_many(channel.config, call.messages, rt.http)
        if len(sent) != len(call.jobs):
            raise ValueError(f"{len(sent)} outcomes for {len(call.jobs)} messages")
        outcomes = list(sent)
    except Exception as exc:  # an adapter bug must not wedge the queue
        log.exception("adapter %s crashed in a multicast", channel.kind)
        reason = f"Internal error while sending ({type(exc).__name__})."
        outcomes = [Retriable(reason) for _ in call.jobs]
    PROVIDER_LATENCY.labels(channel.kind).observe(time.perf_counter() - started)
    for outcome in outcomes:
        DELIVERIES.labels(channel.kind, type(outcome).__name__.lower()).inc()
    return outcomes


async def send_one(rt: Runtime, job: Job, paused: Paused | None = None) -> SendOutcome | Held:
    delivery, message = job.delivery, job.message
    channel = await rt.channels.get(delivery.channel_id)
    if channel is None:
        return Permanent("The channel was removed before this message could be sent.")
    caps = channel.adapter.capabilities
    await campaign_throttle.before_send(rt, message.extra)
    limit, window, spaced = tier_window(channel_rate(caps, channel.config))
    await rt.rate_limiter.acquire_window(
        f"channel-window:{channel.id}", limit, window, spaced=spaced
    )
    if caps.recipient_rate_per_second:
        # Providers that also limit each (business, customer) pair: WhatsApp's 131056.
        await rt.rate_limiter.acquire(
            f"recipient:{channel.id}:{delivery.recipient}",
            caps.recipient_rate_per_second,
            caps.recipient_burst,
        )
    # Last look before the provider: a campaign paused while this send waited is held.
    if paused is not None and await paused.holds(rt, message.extra):
        return Held()
    outbound = outbound_message(
        rt,
        channel,
        job,
        await reply_context.load(
            rt, channel, message.conversation_id, delivery.recipient, message.extra
        ),
    )
    started = time.perf_counter()
    try:
        outcome = await channel.adapter.send(channel.config, outbound, rt.http)
    except Exception as exc:  # an adapter bug must not wedge the queue
        log.exception("adapter %s crashed sending message %s", channel.kind, message.id)
        outcome = Retriable(f"Internal error while sending ({type(exc).__name__}).")
    PROVIDER_LATENCY.labels(channel.kind).observe(time.perf_counter() - started)
    DELIVERIES.labels(channel.kind, type(outcome).__name__.lower()).inc()
    return outcome


async def record(rt: Runtime, outcomes: list[tuple[int, SendOutcome | Held]]) -> None:
    """Record a group of outcomes in one transaction (one commit, one fsync, for many sends).
    Accepted sends, nearly all of them, take `do_record_sent`'s Core statements; failures the
    ORM path, which also notes the channel's last error and provider opt-outs."""
    async with transaction(rt) as tx:
        s = tx.session
        found = await s.execute(
            select(Delivery.id, Delivery.message_id, Delivery.attempts, Delivery.created_at).where(
                Delivery.id.in_([delivery_id for delivery_id, _ in outcomes])
            )
        )
        deliveries = {row.id: row for row in found}
        now = utcnow()
        sent: list[tuple[int, int, Sent]] = []
        failed: dict[int, Permanent] = {}
        retries: list[dict[str, object]] = []
        held: list[dict[str, object]] = []
        for delivery_id, outcome in outcomes:
            row = deliveries.get(delivery_id)
            if row is None:
                continue  # deleted with its conversation while in flight
            if isinstance(outcome, Held):
                held.append(
                    {
                        "id": delivery_id,
                        "state": DeliveryState.HELD,
                        "lease_until": None,
                        "claimed_by": None,
                        "attempts": max(0, row.attempts - 1),  # the claim counted one
                        "updated_at": now,
                    }
                )
            elif isinstance(outcome, Sent):
                sent.append((delivery_id, row.message_id, outcome))
            elif isinstance(outcome, Permanent):
                failed[delivery_id] = outcome
            elif should_give_up(row.attempts, row.created_at, now):
                last = outcome.reason.removesuffix(".").removesuffix("; will retry")
                gave_up = f"Gave up after {row.attempts} attempts: {last}."
                failed[delivery_id] = Permanent(gave_up, outcome.code)
            else:
                retries.append(
                    {
                        "id": delivery_id,
                        "state": DeliveryState.PENDING,
                        "lease_until": None,
                        "last_error": outcome.reason,
                        "next_attempt_at": now
                        + timedelta(seconds=retry_delay(row.attempts, outcome)),
                        "updated_at": now,
                    }
                )
        if retries:
            await s.execute(update(Delivery), retries)
        if held:
            await s.execute(update(Delivery), held)
        await do_record_sent(tx, sent)
        if failed:
            rows = (await s.scalars(select(Delivery).where(Delivery.id.in_(failed)))).all()
            messages = {
                m.id: m
                for m in await s.scalars(
                    select(Message).where(Message.id.in_([d.message_id for d in rows]))
                )
            }
            await do_record_failures(
                tx,
                [
                    (d, messages[d.message_id], failed[d.id])
                    for d in rows
                    if d.message_id in messages
                ],
            )
        # The next message of each conversation may now go; retries wait their time.
        tx.wake_after_commit(Queue.DELIVERY)


class Recorder:
    """Collects send outcomes and records them in groups: whatever finished while the previous
    group was being committed goes into the next one (the ingest path's group commit, for
    outcomes). A delivery stays `sending` until its outcome is committed, so per-conversation
    order holds, and a crash before the commit leaves a lease that expires: the send retries."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.pending: list[tuple[int, SendOutcome | Held]] = []
        self.ready = asyncio.Event()
        self.enough = asyncio.Event()
        self.last_group = 0  # outcomes in the last group recorded

    def add(self, delivery_id: int, outcome: SendOutcome | Held) -> None:
        self.pending.append((delivery_id, outcome))
        self.ready.set()
        if len(self.pending) >= GATHER_TARGET:
            self.enough.set()

    async def run(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            if self.last_group >= GATHER_FROM and len(self.pending) < GATHER_TARGET:
                self.enough.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(GATHER_SECONDS):
                        await self.enough.wait()
            self.last_group = await self.record_group()
            if self.pending:
                self.ready.set()  # what finished meanwhile: the next group

    async def record_group(self) -> int:
        """Record up to GROUP pending outcomes. A group leaves `pending` only once recorded,
        so a cancellation mid-record leaves it for the next one (recording an outcome twice
        changes nothing the first time did not)."""
        group = self.pending[:GROUP]
        if group:
            await self._record(group)
            del self.pending[: len(group)]
        return len(group)

    async def flush(self) -> None:
        """Record everything pending (shutting down)."""
        while self.pending:
            await self.record_group()

    async def _record(self, group: list[tuple[int, SendOutcome | Held]]) -> None:
        try:
            await record(self.rt, group)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            if len(group) == 1:
                log.exception("recording the outcome of delivery %s failed", group[0][0])
                return  # its lease expires and it is tried again
            log.exception("recording %d outcomes together failed; one by one", len(group))
        for item in group:  # one bad row must not lose the others' outcomes
            await self._record([item])


async def run(rt: Runtime) -> None:
    me = worker_id()
    slots = asyncio.Semaphore(CONCURRENCY)
    in_flight: set[asyncio.Task[object]] = set()
    recorder = Recorder(rt)
    paused = Paused()
    recording = asyncio.create_task(recorder.run(), name="delivery-recorder")
    try:
        await recover_expired_leases(rt)
        next_recovery = time.monotonic() + LEASE_SECONDS / 2
        full = False
        while True:
            try:
                if time.monotonic() >= next_recovery:
                    next_recovery = time.monotonic() + LEASE_SECONDS / 2
                    if await recover_expired_leases(rt):
                        continue
                limit = BUSY_BATCH if full else BATCH
                jobs = await claim(rt, me, limit, look_first=not full)
                full = len(jobs) == limit
                jobs, calls = await plan_multicasts(rt, me, jobs)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery claim failed; retrying")
                await asyncio.sleep(1.0)
                continue
            todo: list[Job | Multicast] = [*calls, *jobs]
            for work in todo:
                await slots.acquire()
                name = (
                    f"multicast-{work.jobs[0].delivery.id}"
                    if isinstance(work, Multicast)
                    else f"send-{work.delivery.id}"
                )
                task = asyncio.create_task(_guarded(rt, work, slots, recorder, paused), name=name)
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if not jobs and not calls:
                await rt.wait_for_work(Queue.DELIVERY, IDLE_POLL_SECONDS)
    finally:
        await _wind_down(in_flight, recording, recorder)


async def _wind_down(
    in_flight: set[asyncio.Task[object]], recording: asyncio.Task[None], recorder: Recorder
) -> None:
    """Shutting down: sends under way get a moment to finish, and every outcome known is
    recorded before the worker goes — else a message the provider accepted would be sent again
    when its lease expired. Sends still waiting (on a rate limit) are cancelled: they were never
    sent, and their deliveries come back when their leases expire."""
    if in_flight:
        _done, waiting = await asyncio.wait(set(in_flight), timeout=SHUTDOWN_GRACE_SECONDS)
        for task in waiting:
            task.cancel()
    recording.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await recording
    try:
        await recorder.flush()
    except Exception:
        log.exception("recording outcomes at shutdown failed; their leases will expire")


async def _guarded(
    rt: Runtime,
    work: Job | Multicast,
    slots: asyncio.Semaphore,
    recorder: Recorder,
    paused: Paused,
) -> object:
    """Send one job or one multicast call and hand the outcomes to the recorder."""
    jobs = work.jobs if isinstance(work, Multicast) else [work]
    try:
        if isinstance(work, Multicast):
            outcomes = await send_multicast(rt, work, paused)
        else:
            outcomes = [await send_one(rt, work, paused)]
        for job, outcome in zip(jobs, outcomes, strict=True):
            recorder.add(job.delivery.id, outcome)
        return outcomes
    except Exception:
        log.exception(
            "%s %s failed unexpectedly; its lease will expire and it retries",
            "multicast from delivery" if isinstance(work, Multicast) else "delivery",
            jobs[0].delivery.id,
        )
        return None
    finally:
        slots.release()
