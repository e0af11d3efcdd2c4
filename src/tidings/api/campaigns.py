"""REST API for campaigns, channel preference and fallback plans.

- `/api/v1/campaigns`: create, list, get, edit (PATCH), CSV audience upload, preview, launch,
  pause, resume, cancel, report, recipients (JSON pages) and `recipients.csv`;
- `/api/v1/contacts/{id}/preference`: which channel and why (GET), set or clear it (PUT);
- `/api/v1/inboxes/{id}/fallback`: the inbox's fallback plan for replies (GET, PUT).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from tidings import csvio
from tidings.access import Principal, require_admin, require_inbox, require_own
from tidings.actions import campaign_recipients as recipient_state
from tidings.actions import campaigns as actions
from tidings.actions import fallback, preference
from tidings.api.deps import RT, Who, uploaded
from tidings.api.queries import workspace_rows
from tidings.api.schemas import Strict, answer
from tidings.campaigns import report as reporting
from tidings.domain.campaigns import CampaignState, RecipientState
from tidings.domain.errors import InvalidInput, NotFound
from tidings.runtime import Runtime
from tidings.serialize import ts
from tidings.storage.models import Campaign, CampaignRecipient, InboxFallback

router = APIRouter(prefix="/api/v1")


class CampaignIn(Strict):
    name: str | None = Field(default=None, max_length=200)
    content: dict[str, Any] | None = Field(
        default=None,
        description='{"text": "Hi {{first_name}}", "texts": {"twilio": "..."}, '
        '"template": {"name", "language", "params": ["{{name}}"]}}',
    )
    audience: dict[str, Any] | None = Field(
        default=None,
        description='{"labels": [], "filters": {}, "contact_ids": [], "all_contacts": false}',
    )
    channel_ids: list[int] | None = Field(default=None, description="in order of preference")
    fallback: dict[str, Any] | None = Field(
        default=None,
        description='{"to_channel_id", "after_seconds", "on_failed", "on_window_closed"}',
    )
    rate_per_second: float | None = Field(default=None, description="send-rate cap")
    quiet_hours: dict[str, Any] | None = Field(
        default=None, description='{"start": "21:00", "end": "08:00"}, recipient local time'
    )
    scheduled_at: datetime | None = None


# --- answers ----------------------------------------------------------------------------------


class OutboxOut(BaseModel):
    held: int = Field(description="Paused: will not go until resumed")
    waiting: int = Field(description="Queued for the delivery worker")
    in_flight: int = Field(description="Claimed by a worker: may already be with the provider")


class CampaignOut(BaseModel):
    id: int
    name: str
    state: str
    purpose: str
    # The campaign's own settings, echoed as given (see CampaignIn for their shapes).
    audience: dict[str, Any]
    content: dict[str, Any]
    channel_ids: list[int]
    fallback: dict[str, Any]
    rate_per_second: float | None
    quiet_hours: dict[str, Any]
    scheduled_at: str | None
    created_by: int | None
    created_at: str
    launched_at: str | None
    finished_at: str | None
    counts: dict[str, int] | None = Field(description="Recipients per state, and total")


class CampaignDetailOut(CampaignOut):
    outbox: OutboxOut | None = Field(description="null while a draft")


class FailureOut(BaseModel):
    state: str
    reason: str | None
    count: int


class ReportOut(BaseModel):
    campaign_id: int
    state: str
    counts: dict[str, int] = Field(description="Recipients per state")
    per_channel: dict[str, dict[str, int | str | None]] = Field(
        description="{channel_id: {name, total, <state>: count}}"
    )
    delivery_rate: float | None
    read_rate: float | None
    replies: int
    opt_outs: int
    fallbacks: int
    cost: str | None = Field(description="Estimated cost (a decimal string)")
    failures: list[FailureOut]
    launched_at: str | None
    finished_at: str | None


class RecipientOut(BaseModel):
    id: int
    contact_id: int | None
    address: str | None
    source_row: int | None
    state: str
    reason: str | None
    detail: str | None
    channel_id: int | None
    channel_reason: str | None
    conversation_id: int | None
    message_id: int | None
    fallback_message_id: int | None
    queued_at: str | None
    not_before: str | None


class RecipientPage(BaseModel):
    data: list[RecipientOut]
    next_after: int | None


class PreferenceOut(BaseModel):
    channel_id: int | None
    kind: str | None
    source: str = Field(description="explicit | learned | none")
    reason: str = Field(description="Why this channel, in words")


class FallbackPlanOut(BaseModel):
    """The inbox's fallback plan; `{}` when it has none (so every field may be absent)."""

    to_channel_id: int | None = None
    after_seconds: int | None = None
    on_failed: bool | None = None
    on_window_closed: bool | None = None


class CsvRowProblemOut(BaseModel):
    row: int = Field(description="Row number as a spreadsheet shows it (header: 1)")
    value: str | None = Field(default=None, description="Invalid rows: the cell as given")
    error: str | None = Field(default=None, description="Invalid rows: why")
    phone: str | None = Field(default=None, description="Duplicates: the number (E.164)")


class CsvUploadOut(BaseModel):
    rows: int
    added: int
    contacts_created: int
    invalid: list[CsvRowProblemOut]
    duplicates: list[CsvRowProblemOut]


class PreviewChannelOut(BaseModel):
    name: str
    kind: str
    recipients: int


class PreviewTotalsOut(BaseModel):
    recipients: int
    by_channel: dict[str, PreviewChannelOut] = Field(description="{channel_id: ...}")
    reach: dict[str, PreviewChannelOut] = Field(
        description="{channel_id: ...} for each campaign channel: the recipients with an address "
        "there, whatever the content (by_channel: where the plan sends)"
    )
    skipped: dict[str, int] = Field(description="{reason: recipients}")
    sms_segments: int
    estimated_cost: dict[str, str] = Field(description="{currency: decimal string}")


class PreviewEntryOut(BaseModel):
    """One sampled recipient: `skip`/`detail` when skipped, else the planned send."""

    contact_id: int | None
    address: str | None
    source_row: int | None
    name: str | None = Field(default=None, description="The contact's name (or the CSV's)")
    skip: str | None = None
    detail: str | None = None
    channel_id: int | None = None
    channel: str | None = None
    why: str | None = None
    kind: str | None = None
    to: str | None = None
    content: str | None = None
    sms_segments: int | None = None
    sms_encoding: str | None = None
    cost: str | None = None


class PreviewOut(BaseModel):
    campaign_id: int
    totals: PreviewTotalsOut
    sample: list[PreviewEntryOut]


async def _with_counts(rt: Runtime, c: Campaign) -> dict[str, Any]:
    """The campaign with its counts and, once launched, where its queued messages stand in
    the outbox (`held` while paused, `in_flight`: already claimed for sending)."""
    async with rt.db.read() as s:
        out = actions.campaign_dict(c, await reporting.counts(s, c.id))
        out["outbox"] = (
            await recipient_state.outbox(s, c.id) if c.state != CampaignState.DRAFT else None
        )
        return out


async def _get(rt: Runtime, who: Principal, campaign_id: int) -> Campaign:
    """The campaign, for owners and admins."""
    require_admin(who)
    async with rt.db.read() as s:
        return await require_own(s, who, Campaign, campaign_id, "campaign")


@router.post("/campaigns", status_code=201, tags=["campaigns"], response_model=CampaignDetailOut)
async def create_campaign(body: CampaignIn, who: Who, rt: RT) -> dict[str, Any]:
    """A draft campaign. Add a CSV audience, preview, then launch."""
    c = await actions.check_create_campaign(rt, who, body.model_dump(exclude_unset=True))
    return await _with_counts(rt, c)


@router.get("/campaigns", tags=["campaigns"], response_model=list[CampaignOut])
async def list_campaigns(who: Who, rt: RT) -> list[dict[str, Any]]:
    require_admin(who)
    async with rt.db.read() as s:
        rows = await workspace_rows(s, Campaign, who.workspace_id, Campaign.id.desc())
        return [actions.campaign_dict(c, await reporting.counts(s, c.id)) for c in rows]


@router.get("/campaigns/{campaign_id}", tags=["campaigns"], response_model=CampaignDetailOut)
async def get_campaign(campaign_id: int, who: Who, rt: RT) -> dict[str, Any]:
    return await _with_counts(rt, await _get(rt, who, campaign_id))


@router.patch("/campaigns/{campaign_id}", tags=["campaigns"], response_model=CampaignDetailOut)
async def patch_campaign(campaign_id: int, body: CampaignIn, who: Who, rt: RT) -> dict[str, Any]:
    c = await actions.check_update_campaign(
        rt, who, campaign_id, body.model_dump(exclude_unset=True)
    )
    return await _with_counts(rt, c)


@router.post(
    "/campaigns/{campaign_id}/audience/csv",
    tags=["campaigns"],
    response_model=CsvUploadOut,
    response_model_exclude_unset=True,
)
async def upload_csv(
    campaign_id: int,
    request: Request,
    who: Who,
    rt: RT,
    region: Annotated[
        str | None, Query(description="read national numbers in this region (e.g. DE)")
    ] = None,
) -> dict[str, Any]:
    """The body is the CSV (text/csv), or a multipart form with a `file` field. A `phone`
    column is required; other columns become template variables. Bad and duplicate rows are
    reported (and kept as skipped recipients)."""
    raw = await uploaded(request, "file: attach the CSV as a file field named 'file'")
    if not raw.strip():
        raise InvalidInput("csv: the upload is empty")
    return await actions.check_upload_csv(rt, who, campaign_id, raw, region)


@router.post(
    "/campaigns/{campaign_id}/preview",
    tags=["campaigns"],
    response_model=PreviewOut,
    response_model_exclude_unset=True,
)
async def preview(
    campaign_id: int, who: Who, rt: RT, sample: Annotated[int, Query(ge=0, le=200)] = 20
) -> dict[str, Any]:
    return await actions.check_preview(rt, who, campaign_id, sample)


@router.post(
    "/campaigns/{campaign_id}/{action}", tags=["campaigns"], response_model=CampaignDetailOut
)
async def move(campaign_id: int, action: str, who: Who, rt: RT) -> dict[str, Any]:
    """launch | pause | resume | cancel."""
    if action == "launch":
        c = await actions.check_launch(rt, who, campaign_id)
    elif action in ("pause", "resume", "cancel"):
        c = await actions.check_move(rt, who, campaign_id, action)
    else:
        raise NotFound(f"no campaign action {action!r}")
    return await _with_counts(rt, c)


@router.get("/campaigns/{campaign_id}/report", tags=["campaigns"], response_model=ReportOut)
async def report(campaign_id: int, who: Who, rt: RT) -> dict[str, Any]:
    c = await _get(rt, who, campaign_id)
    async with rt.db.read() as s:
        return await reporting.report(s, c)


def _recipient_dict(r: CampaignRecipient) -> dict[str, Any]:
    return answer(RecipientOut, r, queued_at=ts(r.queued_at), not_before=ts(r.not_before))


@router.get("/campaigns/{campaign_id}/recipients", tags=["campaigns"], response_model=RecipientPage)
async def recipients(
    campaign_id: int,
    who: Who,
    rt: RT,
    state: str | None = None,
    after: Annotated[int, Query(ge=0, description="next_after of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    await _get(rt, who, campaign_id)
    q = select(CampaignRecipient).where(
        CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.id > after
    )
    if state is not None:
        if state not in RecipientState._value2member_map_:
            raise InvalidInput(f"state: one of {', '.join(RecipientState)}")
        q = q.where(CampaignRecipient.state == state)
    async with rt.db.read() as s:
        rows = (await s.scalars(q.order_by(CampaignRecipient.id).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "data": [_recipient_dict(r) for r in rows],
        "next_after": rows[-1].id if more and rows else None,
    }


@router.get("/campaigns/{campaign_id}/recipients.csv", tags=["campaigns"])
async def recipients_csv(campaign_id: int, who: Who, rt: RT) -> Response:
    c = await _get(rt, who, campaign_id)

    async def pages() -> AsyncIterator[list[list[Any]]]:
        async with rt.db.read() as s:
            async for rows in reporting.recipient_rows(s, c.id):
                yield rows

    return csvio.download(f"campaign-{c.id}-recipients", reporting.CSV_COLUMNS, pages())


# --- channel preference ---------------------------------------------------------------------


class PreferenceIn(Strict):
    channel_id: int | None = Field(description="null clears the explicit preference")
    source: str = Field(default="agent", description="agent | customer (their opt-in)")


@router.get("/contacts/{contact_id}/preference", tags=["contacts"], response_model=PreferenceOut)
async def get_preference(contact_id: int, who: Who, rt: RT) -> dict[str, Any]:
    """The channel replies and campaigns use first for this contact, and why."""
    return (await preference.check_get_preference(rt, who, contact_id)).as_dict()


@router.put("/contacts/{contact_id}/preference", tags=["contacts"], response_model=PreferenceOut)
async def put_preference(contact_id: int, body: PreferenceIn, who: Who, rt: RT) -> dict[str, Any]:
    pref = await preference.check_set_preference(rt, who, contact_id, body.channel_id, body.source)
    return pref.as_dict()


# --- fallback plans -------------------------------------------------------------------------


@router.get(
    "/inboxes/{inbox_id}/fallback",
    tags=["inboxes"],
    response_model=FallbackPlanOut,
    response_model_exclude_unset=True,
)
async def get_inbox_fallback(inbox_id: int, who: Who, rt: RT) -> dict[str, Any]:
    require_admin(who)
    async with rt.db.read() as s:
        await require_inbox(s, who, inbox_id)
        row = await s.get(InboxFallback, inbox_id)
    return (row.plan or {}) if row is not None else {}


@router.put(
    "/inboxes/{inbox_id}/fallback",
    tags=["inboxes"],
    response_model=FallbackPlanOut,
    response_model_exclude_unset=True,
)
async def put_inbox_fallback(
    inbox_id: int, body: dict[str, Any], who: Who, rt: RT
) -> dict[str, Any]:
    """{"to_channel_id", "after_seconds", "on_failed"}; `{}` removes the plan."""
    require_admin(who)
    return await fallback.check_set_inbox_plan(rt, who.workspace_id, inbox_id, body)
