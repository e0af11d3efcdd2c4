"""`GET /api/v1/channel-kinds`: what every registered channel kind can do, as the browser needs
it (label, icon, colour, SMS, phone-addressed, campaign text, templates, service window), read
from the adapter registry so that no page keeps its own list of kinds (issue #17 item 8)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tidings.api.deps import Who
from tidings.channels.registry import kind_capabilities

router = APIRouter(prefix="/api/v1", tags=["channels"])


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


@router.get("/channel-kinds", response_model=list[ChannelKindOut])
async def channel_kinds(who: Who) -> list[ChannelKindOut]:
    """Every channel kind this server can connect, with what the UI needs to know about it."""
    return [ChannelKindOut.model_validate(k) for k in kind_capabilities()]
