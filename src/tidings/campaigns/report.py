"""What a campaign did: counts per state and channel, rates, replies, opt-outs, cost, failures
grouped by reason, and one CSV line per recipient."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from tidings import csvio
from tidings.campaigns.plan import FALLBACK_REASON
from tidings.domain.campaigns import RecipientState
from tidings.domain.enums import ConsentStatus, Direction, MessageKind
from tidings.serialize import ts
from tidings.storage.models import (
    Campaign,
    CampaignRecipient,
    Channel,
    Consent,
    Contact,
    Message,
)

CSV_COLUMNS = (
    "recipient_id",
    "source_row",
    "contact_id",
    "name",
    "address",
    "state",
    "reason",
    "detail",
    "channel_id",
    "channel_reason",
    "message_id",
    "fallback_message_id",
    "conversation_id",
    "queued_at",
    "cost",
    "replied",
)


async def counts(s: AsyncSession, campaign_id: int) -> dict[str, int]:
    rows = await s.execute(
        select(CampaignRecipient.state, func.count())
        .where(CampaignRecipient.campaign_id == campaign_id)
        .group_by(CampaignRecipient.state)
    )
    out = {str(st): 0 for st in RecipientState}
    for state, n in rows:
        out[str(state)] = int(n)
    out["total"] = sum(out[str(st)] for st in RecipientState)
    return out


def _replied() -> Any:
    """A recipient replied: an inbound message in its conversation received after it was
    queued. Received (`created_at`, our clock), not the provider's `sent_at`: providers stamp
    whole seconds, so a reply within the second of queueing looked older than the send.
    System lines are not replies, though stored as inbound: a provider's notice (WhatsApp's
    "changed their number") or a consent change the customer did not write."""
    return exists().where(
        Message.conversation_id == CampaignRecipient.conversation_id,
        Message.direction == Direction.IN,
        Message.kind.not_in((MessageKind.SYSTEM, MessageKind.NOTE)),
        Message.created_at >= CampaignRecipient.queued_at,
    )


def _opted_out_after() -> Any:
    return exists().where(
        Consent.contact_id == CampaignRecipient.contact_id,
        Consent.status == ConsentStatus.OPTED_OUT,
        Consent.changed_at >= CampaignRecipient.queued_at,
    )


async def by_channel(
    s: AsyncSession, campaign_id: int
) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """The counts per state and the per-channel table from one grouped read, so the two always
    agree: each channel's row sums to its `total`, and the rows (with "none" for recipients
    that have no channel yet: pending, or skipped before one was chosen) sum to the counts.
    A recipient counts under its current channel — the fallback channel once it fell back."""
    totals = {str(st): 0 for st in RecipientState}
    per_channel: dict[str, dict[str, Any]] = {}
    for channel_id, name, state, n in await s.execute(
        select(CampaignRecipient.channel_id, Channel.name, CampaignRecipient.state, func.count())
        .outerjoin(Channel, Channel.id == CampaignRecipient.channel_id)
        .where(CampaignRecipient.campaign_id == campaign_id)
        .group_by(CampaignRecipient.channel_id, Channel.name, CampaignRecipient.state)
    ):
        key = str(channel_id) if channel_id is not None else "none"
        entry = per_channel.setdefault(
            key,
            {"name": name if channel_id is not None else None, "total": 0}
            | {str(st): 0 for st in RecipientState},
        )
        entry[str(state)] = entry.get(str(state), 0) + int(n)
        entry["total"] += int(n)
        totals[str(state)] = totals.get(str(state), 0) + int(n)
    totals["total"] = sum(totals[str(st)] for st in RecipientState)
    return totals, per_channel


async def report(s: AsyncSession, campaign: Campaign) -> dict[str, Any]:
    cid = campaign.id
    by_state, per_channel = await by_channel(s, cid)
    failures = [
        {"state": state, "reason": reason, "count": int(n)}
        for state, reason, n in await s.execute(
            select(CampaignRecipient.state, CampaignRecipient.reason, func.count())
            .where(
                CampaignRecipient.campaign_id == cid,
                CampaignRecipient.state.in_((RecipientState.FAILED, RecipientState.SKIPPED)),
            )
            .group_by(CampaignRecipient.state, CampaignRecipient.reason)
            .order_by(func.count().desc())
        )
    ]
    sent_like = (
        sum(
            by_state[s_]
            for s_ in (RecipientState.SENT, RecipientState.DELIVERED, RecipientState.READ)
        )
        + by_state[RecipientState.FAILED]
    )
    delivered = by_state[RecipientState.DELIVERED] + by_state[RecipientState.READ]
    in_campaign = CampaignRecipient.campaign_id == cid
    replies = int(
        await s.scalar(
            select(func.count()).select_from(CampaignRecipient).where(in_campaign, _replied())
        )
        or 0
    )
    opt_outs = int(
        await s.scalar(
            select(func.count())
            .select_from(CampaignRecipient)
            .where(in_campaign, CampaignRecipient.queued_at.isnot(None), _opted_out_after())
        )
        or 0
    )
    linked = aliased(Message)
    cost = await s.scalar(
        select(func.sum(linked.cost_estimate))
        .select_from(CampaignRecipient)
        .join(
            linked,
            or_(
                linked.id == CampaignRecipient.message_id,
                linked.id == CampaignRecipient.fallback_message_id,
            ),
        )
        .where(in_campaign)
    )
    # A recipient went by fallback either when its first message failed or was not delivered
    # in time (a follow-up on the fallback channel: `fallback_message_id`), or when the plan
    # chose the fallback channel from the start because no campaign channel could send
    # (`plan.plan_send`, `on_window_closed`: its channel reason says "fallback").
    fallbacks = int(
        await s.scalar(
            select(func.count())
            .select_from(CampaignRecipient)
            .where(
                in_campaign,
                or_(
                    CampaignRecipient.fallback_message_id.isnot(None),
                    CampaignRecipient.channel_reason.like(f"{FALLBACK_REASON}%"),
                ),
            )
        )
        or 0
    )
    return {
        "campaign_id": cid,
        "state": campaign.state,
        "counts": by_state,
        "per_channel": per_channel,
        "delivery_rate": round(delivered / sent_like, 4) if sent_like else None,
        "read_rate": round(by_state[RecipientState.READ] / delivered, 4) if delivered else None,
        "replies": replies,
        "opt_outs": opt_outs,
        "fallbacks": fallbacks,
        "cost": str(Decimal(cost)) if cost is not None else None,
        "failures": failures,
        "launched_at": ts(campaign.launched_at),
        "finished_at": ts(campaign.finished_at),
    }


def export_csv(s: AsyncSession, campaign_id: int) -> AsyncIterator[str]:
    """The report per recipient as CSV text, streamed in pages."""
    return csvio.stream(CSV_COLUMNS, recipient_rows(s, campaign_id))


async def recipient_rows(
    s: AsyncSession, campaign_id: int, page: int = 2000
) -> AsyncIterator[list[list[Any]]]:
    """The report per recipient (CSV_COLUMNS), in pages (keyset on id)."""
    last = 0
    original = aliased(Message)
    follow = aliased(Message)
    while True:
        rows = (
            await s.execute(
                select(
                    CampaignRecipient,
                    Contact.name,
                    original.cost_estimate,
                    follow.cost_estimate,
                    _replied(),
                )
                .outerjoin(Contact, Contact.id == CampaignRecipient.contact_id)
                .outerjoin(original, original.id == CampaignRecipient.message_id)
                .outerjoin(follow, follow.id == CampaignRecipient.fallback_message_id)
                .where(
                    and_(CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.id > last)
                )
                .order_by(CampaignRecipient.id)
                .limit(page)
            )
        ).all()
        if not rows:
            return
        yield [
            [
                r.id,
                r.source_row,
                r.contact_id,
                name,
                r.address,
                r.state,
                r.reason,
                r.detail,
                r.channel_id,
                r.channel_reason,
                r.message_id,
                r.fallback_message_id,
                r.conversation_id,
                ts(r.queued_at),
                (c1 or 0) + (c2 or 0) if (c1 is not None or c2 is not None) else None,
                "yes" if replied else "no",
            ]
            for r, name, c1, c2, replied in rows
        ]
        last = rows[-1][0].id
