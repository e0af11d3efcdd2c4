"""`POST /api/v1/sms/preview`: how an SMS will travel (encoding, parts) and what it will cost,
for the composer and campaigns to show live while the text is typed (policy/sms.py)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from tidings.access import Principal, can_see_channel
from tidings.actions.workspace_settings import workspace_region
from tidings.api.deps import Who
from tidings.api.schemas import Strict, answer
from tidings.channels.registry import get_adapter
from tidings.channels.registry import kinds as registry_kinds
from tidings.domain.errors import InvalidInput
from tidings.domain.numbers import normalize, region_of
from tidings.policy import sms
from tidings.runtime import Runtime
from tidings.storage.models import Channel

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["sms"])

# The price table's default kind when no SMS channel is named or connected.
DEFAULT_KIND = "twilio"


class PreviewIn(Strict):
    text: str = Field(max_length=50_000, description="The message as the agent typed it")
    smart_encoding: bool = Field(
        default=False, description="Replace look-alike characters (curly quotes...) by GSM ones"
    )
    to: str | None = Field(default=None, description="Recipient, E.164 (prices by country)")
    channel_id: int | None = Field(default=None, description="The SMS channel to price for")


class PartOut(BaseModel):
    text: str
    units: int


class CostOut(BaseModel):
    amount: str
    currency: str
    per_segment: str
    channel_kind: str
    region: str | None


class PreviewOut(BaseModel):
    encoding: str
    segments: int
    characters: int
    units: int = Field(description="Septets (GSM-7) or UTF-16 code units (UCS-2)")
    per_segment: int = Field(description="Units that fit in each part of this message")
    max_segments: int
    ucs2_characters: list[str]
    smart_encoded: bool
    text: str = Field(description="What would be sent (after smart encoding, if applied)")
    to: str | None
    estimated_cost: CostOut | None
    parts: list[PartOut]


async def _channel_kind(rt: Runtime, who: Principal, channel_id: int | None) -> str:
    async with rt.db.read() as s:
        if channel_id is not None:
            row = await s.get(Channel, channel_id)
            if row is None or not can_see_channel(who, row):
                raise InvalidInput(f"channel_id: no channel {channel_id} in this workspace")
            if not get_adapter(row.kind).capabilities.sms:
                raise InvalidInput(f"channel_id: channel {channel_id} is not an SMS channel")
            return row.kind
        kinds = (
            await s.scalars(
                select(Channel.kind)
                .where(Channel.workspace_id == who.workspace_id, Channel.active.is_(True))
                .order_by(Channel.id)
            )
        ).all()
    registered = set(registry_kinds())
    for kind in kinds:
        if kind in registered and get_adapter(kind).capabilities.sms:
            return kind
    return DEFAULT_KIND


@router.post("/sms/preview", response_model=PreviewOut)
async def sms_preview(body: PreviewIn, who: Who, request: Request) -> dict[str, Any]:
    """Encoding (GSM-7 or UCS-2), parts, the characters that force UCS-2, and the estimated
    cost from the price table (TIDINGS_SMS_PRICES) for the channel kind and destination."""
    rt: Runtime = request.app.state.runtime
    async with rt.db.read() as s:
        home = await workspace_region(s, who.workspace_id)
    to: str | None = None
    if body.to is not None:
        to = normalize(body.to, home)
        if to is None:
            raise InvalidInput("to: not a valid phone number; use E.164, e.g. +14155550123")
    kind = await _channel_kind(rt, who, body.channel_id)
    result = sms.analyse(body.text, smart_encoding=body.smart_encoding)
    region = region_of(to) if to else home
    cost: dict[str, Any] | None = None
    try:
        table = sms.price_table()
    except sms.PriceTableError as exc:
        log.error("%s; no cost estimates until it is fixed", exc)
        table = None
    per_segment = table.per_segment(kind, region) if table else None
    if table is not None and per_segment is not None:
        cost = {
            "amount": str(per_segment * result.segments),
            "currency": table.currency,
            "per_segment": str(per_segment),
            "channel_kind": kind,
            "region": region,
        }
    return answer(
        PreviewOut,
        result,
        per_segment=result.per_part,
        max_segments=sms.max_segments(),
        to=to,
        estimated_cost=cost,
        parts=[answer(PartOut, p) for p in result.parts],
    )
