"""Campaign lifecycle: create and edit drafts, add CSV audiences, preview, launch (snapshot),
pause, resume, cancel. Owners and admins only: a broadcast speaks for the whole business."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from tidings.access import Principal, require_admin, require_own
from tidings.actions import campaign_recipients as recipient_state
from tidings.actions import templates
from tidings.actions.base import Tx, require_own_ids, transaction
from tidings.actions.fallback import validate_plan
from tidings.actions.workspace_settings import workspace_region
from tidings.campaigns import audience as aud_mod
from tidings.campaigns import content as cc
from tidings.campaigns import plan as planning
from tidings.campaigns import schedule
from tidings.campaigns.report import counts
from tidings.domain import live_events
from tidings.domain.campaigns import CampaignState, RecipientState, SkipReason
from tidings.domain.enums import MessageKind
from tidings.domain.errors import Conflict, InvalidInput, NotFound
from tidings.runtime import Runtime
from tidings.serialize import ts
from tidings.storage.models import Campaign, CampaignRecipient, Channel, Contact
from tidings.storage.models import Template as TemplateRow
from tidings.storage.types import utcnow

MAX_RATE = 10_000.0


def campaign_dict(c: Campaign, progress: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "state": c.state,
        "purpose": c.purpose,
        "audience": c.audience or {},
        "content": c.content or {},
        "channel_ids": c.channel_ids or [],
        "fallback": c.fallback or {},
        "rate_per_second": c.rate_per_second,
        "quiet_hours": c.quiet_hours or {},
        "scheduled_at": ts(c.scheduled_at),
        "created_by": c.created_by,
        "created_at": ts(c.created_at),
        "launched_at": ts(c.launched_at),
        "finished_at": ts(c.finished_at),
        "counts": progress,
    }


async def _require(tx: Tx, who: Principal, campaign_id: int, *, lock: bool = False) -> Campaign:
    q = select(Campaign).where(Campaign.id == campaign_id)
    if lock and not tx.rt.db.is_sqlite:
        q = q.with_for_update()
    c = await tx.session.scalar(q)
    if c is None or c.workspace_id != who.workspace_id:
        raise NotFound("campaign not found")
    return c


async def _validate_fields(tx: Tx, who: Principal, fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "name" in fields:
        name = fields["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise InvalidInput("name: 1 to 200 characters")
        out["name"] = name.strip()
    if "audience" in fields:
        out["audience"] = aud_mod.validate(fields["audience"])
    if "content" in fields:
        out["content"] = cc.validate(fields["content"])
    if "channel_ids" in fields:
        ids = fields["channel_ids"] or []
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise InvalidInput("channel_ids: a list of channel ids, in order of preference")
        await require_own_ids(tx, who, Channel, ids, "channel_ids", "channel")
        out["channel_ids"] = list(dict.fromkeys(ids))
    if "fallback" in fields:
        plan = validate_plan(fields["fallback"])
        if plan:
            ch = await tx.session.get(Channel, plan["to_channel_id"])
            if ch is None or ch.workspace_id != who.workspace_id:
                raise InvalidInput("fallback.to_channel_id: not a channel of this workspace")
        out["fallback"] = plan
    if "rate_per_second" in fields:
        rate = fields["rate_per_second"]
        if rate is not None and (
            not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 < rate <= MAX_RATE
        ):
            raise InvalidInput(f"rate_per_second: a number in (0, {MAX_RATE:g}], or null")
        out["rate_per_second"] = float(rate) if rate is not None else None
    if "quiet_hours" in fields:
        schedule.parse_quiet_hours(fields["quiet_hours"])
        out["quiet_hours"] = dict(fields["quiet_hours"] or {})
    if "scheduled_at" in fields:
        at = fields["scheduled_at"]
        if at is not None and (not isinstance(at, datetime) or at.tzinfo is None):
            raise InvalidInput("scheduled_at: a time with a time zone, or null")
        out["scheduled_at"] = at
    return out


async def _name_free(tx: Tx, who: Principal, name: str, but: int | None = None) -> None:
    q = select(Campaign.id).where(Campaign.workspace_id == who.workspace_id, Campaign.name == name)
    if but is not None:
        q = q.where(Campaign.id != but)
    if await tx.session.scalar(q) is not None:
        raise Conflict(f"a campaign named {name!r} already exists", code="name_taken")


async def check_create_campaign(rt: Runtime, who: Principal, fields: dict[str, Any]) -> Campaign:
    require_admin(who)
    async with transaction(rt) as tx:
        values = await _validate_fields(tx, who, fields)
        if "name" not in values:
            raise InvalidInput("name: required")
        await _name_free(tx, who, values["name"])
        now = utcnow()
        campaign = Campaign(
            workspace_id=who.workspace_id,
            state=CampaignState.DRAFT,
            purpose="marketing",
            # A draft may come before its message (the editor saves the audience first);
            # launching one without a message is refused.
            content={},
            audience={},
            channel_ids=[],
            fallback={},
            quiet_hours={},
            created_by=who.agent_id,
            created_at=now,
            updated_at=now,
        )
        for key, value in values.items():
            setattr(campaign, key, value)
        tx.session.add(campaign)
        await tx.session.flush()
        tx.emit(live_events.CAMPAIGN_UPDATED(campaign_dict(campaign)), who.workspace_id, None)
        return campaign


async def check_update_campaign(
    rt: Runtime, who: Principal, campaign_id: int, fields: dict[str, Any]
) -> Campaign:
    """Drafts may change anything; a launched campaign only its rate cap and quiet hours."""
    require_admin(who)
    async with transaction(rt) as tx:
        campaign = await _require(tx, who, campaign_id, lock=True)
        values = await _validate_fields(tx, who, fields)
        if campaign.state != CampaignState.DRAFT:
            frozen = set(values) - {"rate_per_second", "quiet_hours"}
            if frozen:
                raise Conflict(
                    f"campaign is {campaign.state}: only rate_per_second and quiet_hours "
                    f"may change now (not {', '.join(sorted(frozen))})",
                    code="campaign_launched",
                )
        if "name" in values:
            await _name_free(tx, who, values["name"], but=campaign.id)
        for key, value in values.items():
            setattr(campaign, key, value)
        campaign.updated_at = utcnow()
        tx.emit(live_events.CAMPAIGN_UPDATED(campaign_dict(campaign)), who.workspace_id, None)
        return campaign


async def _announce_with_counts(tx: Tx, who: Principal, campaign: Campaign) -> None:
    """CAMPAIGN_UPDATED with the recipients' counts as they are now."""
    data = campaign_dict(campaign, await counts(tx.session, campaign.id))
    tx.emit(live_events.CAMPAIGN_UPDATED(data), who.workspace_id, None)


async def check_upload_csv(
    rt: Runtime, who: Principal, campaign_id: int, raw: bytes, region: str | None
) -> dict[str, Any]:
    require_admin(who)
    if region is not None and region.upper() not in _regions():
        raise InvalidInput(f"region: {region!r} is not an ISO 3166 region code")
    async with transaction(rt) as tx:
        campaign = await _require(tx, who, campaign_id, lock=True)
        if campaign.state != CampaignState.DRAFT:
            raise Conflict(
                "the audience is fixed once a campaign is launched", code="campaign_launched"
            )
        # No region given: the workspace's default region (else TIDINGS_DEFAULT_REGION).
        home = region.upper() if region else await workspace_region(tx.session, who.workspace_id)
        report = await aud_mod.import_csv(tx, campaign, raw, home)
        return report.as_dict()


def _regions() -> set[str]:
    import phonenumbers

    return set(phonenumbers.SUPPORTED_REGIONS)


async def check_launch(rt: Runtime, who: Principal, campaign_id: int) -> Campaign:
    """Snapshot the audience and start (or schedule) sending, in one transaction."""
    require_admin(who)
    async with transaction(rt) as tx:
        campaign = await _require(tx, who, campaign_id, lock=True)
        if campaign.state != CampaignState.DRAFT:
            raise Conflict(f"campaign is already {campaign.state}", code="campaign_launched")
        if not campaign.content:
            raise InvalidInput(
                "content: write the message (text, per-channel texts or a template) first",
                code="no_content",
            )
        await aud_mod.snapshot(tx, campaign)
        total = await tx.session.scalar(
            select(func.count())
            .select_from(CampaignRecipient)
            .where(CampaignRecipient.campaign_id == campaign.id)
        )
        if not total:
            raise InvalidInput(
                "the audience is empty: give labels, filters, contact_ids, all_contacts or "
                "upload a CSV",
                code="empty_audience",
            )
        now = utcnow()
        scheduled = campaign.scheduled_at is not None and campaign.scheduled_at > now
        campaign.state = CampaignState.SCHEDULED if scheduled else CampaignState.RUNNING
        campaign.launched_at = campaign.updated_at = now
        await _announce_with_counts(tx, who, campaign)
        return campaign


_MOVES = {
    "pause": ((CampaignState.RUNNING, CampaignState.SCHEDULED), CampaignState.PAUSED),
    "resume": ((CampaignState.PAUSED,), CampaignState.RUNNING),
    "cancel": (
        (CampaignState.DRAFT, CampaignState.SCHEDULED, CampaignState.RUNNING, CampaignState.PAUSED),
        CampaignState.CANCELLED,
    ),
}


async def check_move(rt: Runtime, who: Principal, campaign_id: int, action: str) -> Campaign:
    """pause / resume / cancel: a state change the fan-out reads before its next batch.

    Pause also holds the campaign's queued messages that no delivery worker has claimed
    (`state.hold`); resume releases them. Cancel skips every recipient still pending and
    withdraws the messages that never left (`state.withdraw`). A message a worker had already
    claimed is checked once more right before its send (`delivery.worker.Paused`); one already
    with the provider goes — `GET /campaigns/{id}` says how many (`outbox.in_flight`)."""
    require_admin(who)
    allowed, target = _MOVES[action]
    async with transaction(rt) as tx:
        campaign = await _require(tx, who, campaign_id, lock=True)
        if campaign.state == target:
            return campaign  # idempotent: pausing a paused campaign is fine
        if campaign.state not in allowed:
            raise Conflict(f"cannot {action} a {campaign.state} campaign", code="bad_state")
        now = utcnow()
        if (
            target == CampaignState.RUNNING
            and campaign.scheduled_at
            and campaign.scheduled_at > now
        ):
            target = CampaignState.SCHEDULED
        campaign.state, campaign.updated_at = target, now
        if target == CampaignState.PAUSED:
            await recipient_state.hold(tx, campaign.id)
        elif campaign.launched_at is not None and target in (
            CampaignState.RUNNING,
            CampaignState.SCHEDULED,
        ):
            await recipient_state.release(tx, campaign.id)
        if target == CampaignState.CANCELLED:
            campaign.finished_at = now
            await recipient_state.withdraw(tx, campaign.id)
            await tx.session.execute(
                update(CampaignRecipient)
                .where(
                    CampaignRecipient.campaign_id == campaign.id,
                    CampaignRecipient.state == RecipientState.PENDING,
                )
                .values(
                    state=RecipientState.SKIPPED,
                    reason=SkipReason.CANCELLED,
                    detail="The campaign was cancelled before this recipient's turn.",
                    updated_at=now,
                )
            )
        await _announce_with_counts(tx, who, campaign)
        return campaign


async def check_preview(
    rt: Runtime, who: Principal, campaign_id: int, sample: int = 20
) -> dict[str, Any]:
    """Who would get what, over which channel and why, with SMS parts and the estimated cost:
    the whole audience is planned (nothing is written), and `sample` recipients are shown."""
    require_admin(who)
    async with rt.db.read() as s:
        campaign = await require_own(s, who, Campaign, campaign_id, "campaign")
        aud = await planning.load_audience(rt, s, campaign)
        rows: list[_PreviewRow]
        if campaign.state == CampaignState.DRAFT:
            rows = await _draft_audience(rt, s, campaign)
        else:
            rows = await _recipient_rows(s, campaign)
        totals: dict[str, Any] = {
            "recipients": len(rows),
            "by_channel": {},
            "reach": {
                str(ch.id): {"name": ch.name, "kind": ch.kind, "recipients": 0}
                for ch in aud.channels
            },
            "skipped": {},
        }
        cost: dict[str, Any] = {}
        segments = 0
        shown: list[dict[str, Any]] = []
        bodies: dict[tuple[int, str, str], TemplateRow | None] = {}
        for contact_id, address, source_row, variables, state, reason in rows:
            entry: dict[str, Any] = {
                "contact_id": contact_id,
                "address": address,
                "source_row": source_row,
            }
            if state == RecipientState.SKIPPED:
                decision: planning.Send | planning.Skip = planning.Skip(
                    SkipReason(reason)
                    if reason is not None and reason in SkipReason._value2member_map_
                    else SkipReason.POLICY,
                    "",
                )
            else:
                contact = await s.get(Contact, contact_id) if contact_id else None
                if contact is not None:
                    # Reach: who has an address on each campaign channel, whatever the content
                    # (the editor shows it before the message is written).
                    entry["name"] = contact.name or variables.get("name")
                    for ch in aud.channels:
                        if await planning.address_for(s, ch, contact) is not None:
                            totals["reach"][str(ch.id)]["recipients"] += 1
                if not campaign.content:  # no message yet: nothing to plan, only the reach
                    if len(shown) < sample:
                        shown.append(entry)
                    continue
                decision = await planning.plan_send(s, aud, contact, variables)
            if isinstance(decision, planning.Skip):
                totals["skipped"][decision.reason] = totals["skipped"].get(decision.reason, 0) + 1
                entry.update(skip=decision.reason, detail=decision.detail)
            else:
                ch = decision.channel
                bucket = totals["by_channel"].setdefault(
                    str(ch.id), {"name": ch.name, "kind": ch.kind, "recipients": 0}
                )
                bucket["recipients"] += 1
                segments += decision.segments or 0
                if decision.cost is not None and decision.currency:
                    cost[decision.currency] = cost.get(decision.currency, 0) + decision.cost
                entry.update(
                    channel_id=ch.id,
                    channel=ch.name,
                    why=decision.channel_reason,
                    kind=str(decision.kind),
                    to=decision.address,
                    content=await _as_read(s, ch.id, decision, bodies),
                    sms_segments=decision.segments,
                    sms_encoding=decision.encoding,
                    cost=str(decision.cost) if decision.cost is not None else None,
                )
            if len(shown) < sample:
                shown.append(entry)
        totals["sms_segments"] = segments
        totals["estimated_cost"] = {k: str(v) for k, v in cost.items()}
        return {"campaign_id": campaign.id, "totals": totals, "sample": shown}


async def _as_read(
    s: Any,
    channel_id: int,
    decision: planning.Send,
    bodies: dict[tuple[int, str, str], TemplateRow | None],
) -> str:
    """What the recipient reads: the text, or a template's stored body with their values
    filled in (the template's name and values when its body is not stored here)."""
    if decision.kind != MessageKind.TEMPLATE:
        return decision.preview
    obj = decision.extra["template"]
    key = (channel_id, str(obj.get("name")), str(obj.get("language", {}).get("code")))
    if key not in bodies:
        bodies[key] = await s.scalar(
            select(TemplateRow).where(
                TemplateRow.channel_id == channel_id,
                TemplateRow.name == key[1],
                TemplateRow.language == key[2],
            )
        )
    row = bodies[key]
    if row is None:
        return decision.preview
    return templates.render(row, cc.template_params(obj))


_PreviewRow = tuple[int | None, str | None, int | None, dict[str, Any], str, str | None]


async def _recipient_rows(s: Any, campaign: Campaign) -> list[_PreviewRow]:
    """(contact, address, CSV row, variables, state, reason) of each recipient, in order."""
    return [
        (r.contact_id, r.address, r.source_row, r.variables or {}, r.state, r.reason)
        for r in (
            await s.scalars(
                select(CampaignRecipient)
                .where(CampaignRecipient.campaign_id == campaign.id)
                .order_by(CampaignRecipient.id)
            )
        ).all()
    ]


async def _draft_audience(rt: Runtime, s: Any, campaign: Campaign) -> list[_PreviewRow]:
    """A draft's audience as the launch snapshot would see it, without writing it: planned in
    a transaction that is rolled back."""
    rows: list[_PreviewRow] = []
    try:
        async with rt.db.write() as session:
            await aud_mod.snapshot(Tx(rt, session), campaign)
            rows = await _recipient_rows(session, campaign)
            raise _RollBack
    except _RollBack:
        pass
    return rows


class _RollBack(Exception):
    """Leaves a planning-only transaction without committing it."""
