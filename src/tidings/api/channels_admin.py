"""Changing a connected channel: edit, disable/enable, delete with its impact said
first, and "test connection". Owners and admins; the writes are `actions/channels_admin.py`.

`GET /api/v1/channel-kinds`: what every registered channel kind can do, as the browser needs
it (label, icon, colour, SMS, phone-addressed, campaign text, templates, service window), read
from the adapter registry so that no page keeps its own list of kinds."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from tidings.actions import channels_admin
from tidings.api import schemas as sc
from tidings.api.deps import RT, Who
from tidings.api.v1 import _channel_out
from tidings.channels.registry import kind_capabilities, kinds
from tidings.domain.errors import NotFound

router = APIRouter(prefix="/api/v1", tags=["channels"])
help_router = APIRouter()
# The per-provider guides of the repository (docs/channels/<kind>.md), linked from the
# connect and edit forms; absent in an install without the docs folder.
GUIDES = Path(__file__).resolve().parents[3] / "docs" / "channels"
KIND = re.compile(r"^[a-z0-9_]{1,32}$")


class ChannelKindOut(BaseModel):
    kind: str
    label: str = Field(description="The provider's name as people know it")
    icon: str = Field(description="Icon name in /static/icons.svg (lucide-static)")
    color: str = Field(description="CSS colour of this kind in the UI and reports")
    sms: bool = Field(description="An SMS channel (segments, encoding, STOP keywords)")
    phone_addressed: bool = Field(description="The customer's address is their phone number")
    campaign_text: bool = Field(description="Campaigns may send free text on it")
    templates: bool = Field(description="Approved templates (needed outside the window)")
    service_window_hours: int | None = Field(description="Free-form reply window; null: none")
    text_max_length: int
    receipts: list[str] = Field(description="Statuses the provider reports: sent, delivered, read")
    optional: list[str] = Field(
        description="Optional capabilities it implements (channels/optional.py): typing, "
        "read_receipts, interactive, profiles, template_sync..."
    )


class ChannelPatch(sc.Strict):
    name: str | None = Field(default=None, max_length=200)
    inbox_id: int | None = None
    config: dict[str, Any] | None = Field(
        default=None,
        description="Provider settings merged over the stored ones; a secret left empty or "
        "masked keeps its value",
    )


class ImpactOut(BaseModel):
    channel_id: int
    conversations: int
    messages: int
    pending_sends: int
    on_disable: str
    on_delete: str


class TestOut(BaseModel):
    ok: bool | None = Field(description="null: this kind has no check call")
    message: str


@router.patch("/channels/{channel_id}", response_model=sc.ChannelOut)
async def update_channel(channel_id: int, body: ChannelPatch, who: Who, rt: RT) -> dict[str, Any]:
    channel = await channels_admin.check_update_channel(
        rt, who, channel_id, name=body.name, inbox_id=body.inbox_id, config=body.config
    )
    return _channel_out(rt, channel)


@router.get("/channel-kinds", response_model=list[ChannelKindOut])
async def channel_kinds(who: Who) -> list[ChannelKindOut]:
    """Every channel kind this server can connect, with what the UI needs to know about it."""
    return [ChannelKindOut.model_validate(k) for k in kind_capabilities()]


@router.get("/channels/{channel_id}/impact", response_model=ImpactOut)
async def channel_impact(channel_id: int, who: Who, rt: RT) -> dict[str, Any]:
    """What disabling or deleting the channel would touch: say it before confirming."""
    return await channels_admin.channel_impact(rt, who, channel_id)


@router.post("/channels/{channel_id}/disable", response_model=sc.ChannelOut)
async def disable_channel(channel_id: int, who: Who, rt: RT) -> dict[str, Any]:
    return _channel_out(rt, await channels_admin.check_set_active(rt, who, channel_id, False))


@router.post("/channels/{channel_id}/enable", response_model=sc.ChannelOut)
async def enable_channel(channel_id: int, who: Who, rt: RT) -> dict[str, Any]:
    return _channel_out(rt, await channels_admin.check_set_active(rt, who, channel_id, True))


@router.delete("/channels/{channel_id}", status_code=204)
async def delete_channel(channel_id: int, who: Who, rt: RT) -> None:
    """Conversations and messages stay; see `GET …/impact` for what goes."""
    await channels_admin.check_delete_channel(rt, who, channel_id)


@router.post("/channels/{channel_id}/test", response_model=TestOut)
async def test_channel(channel_id: int, who: Who, rt: RT) -> dict[str, Any]:
    """Ask the provider (or the sandbox simulator) whether the channel's settings work."""
    return await channels_admin.check_test_connection(rt, who, channel_id)


def _guide(kind: str) -> Path | None:
    if not KIND.match(kind):
        return None
    path = GUIDES / f"{kind}.md"
    return path if path.is_file() else None


@router.get("/channels/guides", response_model=list[str])
async def channel_guides(who: Who) -> list[str]:
    """The channel kinds with a setup guide at `/help/channels/{kind}`."""
    return [k for k in kinds() if _guide(k) is not None]


@help_router.get("/help/channels/{kind}", include_in_schema=False)
async def channel_guide(kind: str) -> PlainTextResponse:
    """A provider's setup guide (Markdown, shown as text)."""
    path = _guide(kind)
    if path is None:
        raise NotFound("no guide for this kind of channel")
    return PlainTextResponse(
        path.read_text(encoding="utf-8"), media_type="text/plain; charset=utf-8"
    )
