"""The campaign fan-out: many small idempotent batches claimed from `campaign_recipient`.

One step for one campaign is one transaction: claim up to N `pending` recipients whose time has
come (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's single writer makes claims exclusive),
decide each one's channel and content (`plan.plan_send`, through the shared policy check), and
write — together — each message, its delivery row and the recipient's move to `queued` with the
message id. A crash before the commit leaves the batch `pending` and nothing written; after
the commit, the recipients are no longer `pending`. Either way a restarted worker sends every
recipient exactly one message. Nothing about progress lives in memory: pause, resume and cancel
are campaign state changes that the next step reads.

`run(rt)` keeps one task per running campaign in this process (several processes may run it:
their claims do not overlap), promotes scheduled campaigns whose time came, catches recipient
states up with their messages (`actions.campaign_recipients.reconcile`) and sends
`campaign.updated` live events with counts at most once a second per campaign. What a step
decides for its recipients (wait, skip, queued) is written by `actions.campaign_recipients`.

Time: every "now" the fan-out decides by (promoting a scheduled campaign, quiet hours, a
recipient's `not_before`) comes from the `clock` given to `run` (default: the wall clock), so
tests and simulations can move time forward instead of sleeping until 08:00. The decisions are
stored (`Campaign.state`, `CampaignRecipient.not_before`), so they outlive the process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select

from tidings.actions import campaign_recipients as recipients
from tidings.actions import conversations, gate, outbound, phone_contacts
from tidings.actions.base import Tx, transaction
from tidings.campaigns import plan as planning
from tidings.campaigns import schedule, throttle
from tidings.campaigns.report import counts
from tidings.channels import addressing, registry
from tidings.domain import live_events
from tidings.domain.campaigns import CampaignState, RecipientState, SkipReason
from tidings.domain.enums import (
    FallbackState,
)
from tidings.runtime import Runtime
from tidings.storage.models import (
    Campaign,
    CampaignRecipient,
    Channel,
    Contact,
    FallbackTimer,
    table_of,
)
from tidings.storage.types import utcnow
from tidings.workers.loop import poll

BATCH = 100
# Queued-but-unsent messages a campaign may have in the outbox before its fan-out waits: keeps
# the outbox short (agent replies are not stuck behind a whole campaign) and the cap honest.
MAX_OUTSTANDING = 1000
IDLE_SECONDS = 0.5
PROGRESS_SECONDS = 1.0
# The recipient-state safety net (`campaign_recipients.reconcile`) scans every in-flight
# recipient: at 100,000 of them a visible pause (a second at 62 of 80 sends), so every five minutes.
RECONCILE_SECONDS = 300.0

Clock = Callable[[], datetime]


async def step(rt: Runtime, campaign_id: int, limit: int = BATCH, clock: Clock = utcnow) -> int:
    """Queue (or skip) up to `limit` recipients of one campaign. Returns how many were
    claimed; 0 when the campaign is not running or has nobody due."""
    now = clock()
    async with transaction(rt) as tx:
        s = tx.session
        q = select(Campaign).where(Campaign.id == campaign_id)
        if not rt.db.is_sqlite:
            # A shared lock: a pause (which locks the row for update and holds the queued
            # deliveries) waits for this batch, or this batch sees the pause — never a batch
            # queued after the hold. (SQLite's single writer gives the same order.)
            q = q.with_for_update(read=True)
        campaign = await s.scalar(q)
        if campaign is None or campaign.state != CampaignState.RUNNING:
            return 0
        t = table_of(CampaignRecipient)
        rows = (
            await s.execute(
                select(t.c.id, t.c.contact_id, t.c.variables)
                .where(
                    t.c.campaign_id == campaign_id,
                    t.c.state == RecipientState.PENDING,
                    (t.c.not_before.is_(None)) | (t.c.not_before <= now),
                )
                .order_by(t.c.id)
                .limit(limit)
                .with_for_update(**rt.db.skip_locked())
            )
        ).all()
        if not rows:
            await _maybe_complete(tx, campaign)
            return 0
        aud = await planning.load_audience(rt, s, campaign)
        quiet = schedule.parse_quiet_hours(campaign.quiet_hours)
        # `campaign:<name>`: replies land in the inbox tagged with the campaign.
        label_id = await conversations.do_ensure_label(
            tx, campaign.workspace_id, f"campaign:{campaign.name}"[:100], "#7c3aed"
        )
        tag = throttle.campaign_tag(campaign.id, campaign.rate_per_second)
        contacts = {
            c.id: c
            for c in (
                await s.scalars(
                    select(Contact).where(
                        Contact.id.in_([r.contact_id for r in rows if r.contact_id])
                    )
                )
            ).all()
        }
        known = await planning.prefetch(s, list(contacts))
        sends: list[tuple[int, Contact, planning.Send]] = []
        later: list[dict[str, object]] = []
        skipped: list[dict[str, object]] = []
        for r in rows:
            contact = contacts.get(r.contact_id) if r.contact_id else None
            if contact is not None and quiet is not None:
                # A `timezone` column of the CSV row counts like the contact's attribute.
                attrs = {**(contact.attributes or {}), **_zone_override(r.variables)}
                zone = schedule.zone_for(contact.phone_e164, attrs)
                not_before = schedule.next_allowed(now, zone, quiet)
                if not_before is not None:
                    later.append({"b_id": r.id, "b_not_before": not_before})
                    continue
            decision = await planning.plan_send(s, aud, contact, r.variables, known)
            if isinstance(decision, planning.Skip):
                skipped.append(
                    {"b_id": r.id, "b_reason": decision.reason, "b_detail": decision.detail}
                )
                continue
            assert contact is not None
            sends.append((r.id, contact, decision))
        await _phone_identities(tx, campaign.workspace_id, [c for _r, c, _s in sends], known)
        # Recipients as rows (Core executemany per kind of change), no ORM objects.
        await recipients.do_defer(tx, later, now)
        await recipients.do_skip(tx, skipped, now)
        await _queue(tx, campaign, sends, tag, label_id)
        return len(rows)


async def _phone_identities(
    tx: Tx, workspace_id: int, contacts: list[Contact], known: planning.Known
) -> None:
    """A recipient's phone number, given by the business (contact record, CSV), becomes the
    contact's identity on each phone-addressed channel kind of the workspace (SMS kinds,
    WhatsApp) that it has none on yet — so agents can answer on SMS before the customer
    writes (the composer offers channels the contact has an identity on). One insert per
    batch; an address another contact already holds stays theirs."""
    phoned = [c for c in contacts if c.phone_e164]
    if not phoned:
        return
    s = tx.session
    kinds = [
        k
        for k in (
            await s.scalars(
                select(Channel.kind)
                .where(Channel.workspace_id == workspace_id, Channel.active.is_(True))
                .distinct()
            )
        ).all()
        if k in registry.kinds() and addressing.phone_addressed(registry.get_adapter(k), k)
    ]
    await phone_contacts.do_add_identities(
        tx,
        [
            {
                "workspace_id": workspace_id,
                "contact_id": c.id,
                "channel_kind": kind,
                "address": addressing.phone_identity(kind, c.phone_e164),
                "display_name": c.name,
            }
            for c in {c.id: c for c in phoned}.values()
            for kind in kinds
            if c.phone_e164 and (c.id, kind) not in known.identities
        ],
    )


def _zone_override(variables: dict[str, object] | None) -> dict[str, object]:
    zone = (variables or {}).get("timezone")
    return {"timezone": zone} if isinstance(zone, str) and zone else {}


async def _queue(
    tx: Tx,
    campaign: Campaign,
    sends: list[tuple[int, Contact, planning.Send]],
    tag: dict[str, object],
    label_id: int,
) -> None:
    """Queue one message per planned recipient through the one outbound write path
    (`actions.outbound.do_queue_broadcast`), then move the recipients to `queued`."""
    if not sends:
        return
    extra = {"campaign": {**tag, "name": campaign.name}}
    queued = await outbound.do_queue_broadcast(
        tx,
        [
            outbound.Broadcast(
                contact.id,
                gate.Route(send.channel, send.address),
                send.kind,
                send.text,
                {**send.extra, **extra},
                send.cost,
                recipient_id,
            )
            for recipient_id, contact, send in sends
        ],
        label_id,
        campaign.fallback,
    )
    await recipients.do_mark_queued(
        tx,
        [
            {
                "b_id": recipient_id,
                "b_channel_id": send.channel.id,
                "b_channel_reason": send.channel_reason,
                "b_conversation_id": conv_id,
                "b_message_id": message_id,
            }
            for (recipient_id, _contact, send), (conv_id, message_id) in zip(
                sends, queued, strict=True
            )
        ],
    )


async def _maybe_complete(tx: Tx, campaign: Campaign) -> None:
    """A campaign completes when every recipient reached a final outcome of the send stage:
    none is `pending` (not yet queued) or `queued` (its message, or its fallback message, is
    still in the outbox or being sent), and no fallback is still due for one whose message was
    sent but not delivered (or failed). Until then it stays `running`. Delivered and read are
    receipts that may still come later; they do not hold a campaign open."""
    s = tx.session
    t = table_of(CampaignRecipient)
    left = await s.scalar(
        select(t.c.id)
        .where(
            t.c.campaign_id == campaign.id,
            t.c.state.in_((RecipientState.PENDING, RecipientState.QUEUED)),
        )
        .limit(1)
    )
    if left is not None:
        return
    if campaign.fallback:
        timer = table_of(FallbackTimer)
        waiting = await s.scalar(
            select(timer.c.id)
            .join(t, t.c.message_id == timer.c.message_id)
            .where(
                t.c.campaign_id == campaign.id,
                t.c.state.in_((RecipientState.SENT, RecipientState.FAILED)),
                timer.c.state == FallbackState.WAITING,
            )
            .limit(1)
        )
        if waiting is not None:
            return
    recipients.do_complete(campaign)
    await emit_progress(tx, campaign)


async def outstanding(rt: Runtime, campaign_id: int) -> int:
    async with rt.db.read() as s:
        return int(
            await s.scalar(
                select(func.count())
                .select_from(CampaignRecipient)
                .where(
                    CampaignRecipient.campaign_id == campaign_id,
                    CampaignRecipient.state == RecipientState.QUEUED,
                )
            )
            or 0
        )


async def next_due(rt: Runtime, campaign_id: int, clock: Clock = utcnow) -> float:
    """Seconds until the earliest deferred recipient's time (quiet hours), capped at 5 s."""
    async with rt.db.read() as s:
        at = await s.scalar(
            select(func.min(CampaignRecipient.not_before)).where(
                CampaignRecipient.campaign_id == campaign_id,
                CampaignRecipient.state == RecipientState.PENDING,
            )
        )
    if at is None:
        return IDLE_SECONDS
    return min(5.0, max(0.05, (at - clock()).total_seconds()))


async def run_campaign(rt: Runtime, campaign_id: int, clock: Clock = utcnow) -> None:
    """Batches for one campaign until it is not running or nobody is due right now."""
    async with rt.db.read() as s:
        campaign = await s.get(Campaign, campaign_id)
    if campaign is None:
        return
    rate = campaign.rate_per_second
    size = throttle.queue_batch_size(rate, BATCH)
    limit = MAX_OUTSTANDING if not rate else max(size * 2, min(MAX_OUTSTANDING, int(rate * 2)))
    while True:
        full = await outstanding(rt, campaign_id) >= limit
        if full:
            await asyncio.sleep(0.05)
        elif await step(rt, campaign_id, size, clock):
            continue
        # The outbox is full, or nobody is due: go on only while the campaign runs.
        async with rt.db.read() as s:
            state = await s.scalar(select(Campaign.state).where(Campaign.id == campaign_id))
        if state != CampaignState.RUNNING:
            return
        if not full:
            await asyncio.sleep(await next_due(rt, campaign_id, clock))


async def promote_scheduled(rt: Runtime, clock: Clock = utcnow) -> None:
    now = clock()
    if not await rt.db.has_rows(select(Campaign.id).where(recipients.due_to_start(now))):
        return
    async with transaction(rt) as tx:
        await recipients.do_start_due(tx, now)


async def emit_progress(tx: Tx, campaign: Campaign, now: dict[str, int] | None = None) -> None:
    """`campaign.updated` with the counts (`now`, when the caller has just read them)."""
    data = {
        "id": campaign.id,
        "name": campaign.name,
        "state": campaign.state,
        "counts": now if now is not None else await counts(tx.session, campaign.id),
    }
    tx.emit(live_events.CAMPAIGN_UPDATED(data), campaign.workspace_id, None)


async def run(rt: Runtime, clock: Clock = utcnow) -> None:
    """The campaign worker loop (see the module docstring), on the shared `workers.loop.poll`."""
    tasks: dict[int, asyncio.Task[None]] = {}
    last_progress: dict[int, tuple[float, dict[str, int]]] = {}
    next_reconcile = 0.0

    async def tick(rt: Runtime) -> bool:
        nonlocal next_reconcile
        await promote_scheduled(rt, clock)
        async with rt.db.read() as s:
            rows = await s.execute(
                select(Campaign.id, Campaign.state).where(
                    Campaign.state.in_((CampaignState.RUNNING, CampaignState.PAUSED))
                    | (
                        (Campaign.state == CampaignState.COMPLETED)
                        & (Campaign.finished_at > utcnow() - timedelta(hours=1))
                    )
                )
            )
            states = dict(rows.all())
        for cid, state in states.items():
            task = tasks.get(cid)
            if state == CampaignState.RUNNING and (task is None or task.done()):
                tasks[cid] = rt.spawn(run_campaign(rt, cid, clock), name=f"campaign-{cid}")
        if time.monotonic() >= next_reconcile:
            next_reconcile = time.monotonic() + RECONCILE_SECONDS
            await recipients.reconcile(rt)
        await _progress(rt, list(states), last_progress)
        return False

    try:
        await poll(rt, tick, queue=None, idle=IDLE_SECONDS, what="campaign loop")
    finally:
        for task in tasks.values():
            task.cancel()


async def _progress(
    rt: Runtime, active: list[int], last: dict[int, tuple[float, dict[str, int]]]
) -> None:
    now = time.monotonic()
    for cid in active:
        seen = last.get(cid)
        if seen is not None and now - seen[0] < PROGRESS_SECONDS:
            continue
        async with transaction(rt) as tx:
            campaign = await tx.session.get(Campaign, cid)
            if campaign is None:
                continue
            current = await counts(tx.session, cid)
            if seen is None or seen[1] != current:
                await emit_progress(tx, campaign, current)
        last[cid] = (now, current)


__all__ = ["SkipReason", "run", "run_campaign", "step"]
