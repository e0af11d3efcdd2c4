"""Reply options: through which of the conversation's channels an agent's reply may go now,
with which message tag, and why not (`actions/gate.py`, the decision the send takes). The
composer's picker (`/api/v1/ui/conversations/{id}/context`, `routes`) serves the same list."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tidings.access import require_conversation
from tidings.actions import gate
from tidings.api.deps import RT, Who
from tidings.storage.models import Conversation

router = APIRouter(prefix="/api/v1", tags=["conversations"])


class WindowOut(BaseModel):
    channel_id: int
    applies: bool = Field(description="Whether the channel has a customer-service window")
    open: bool
    closes_at: str | None
    tag: str | None = Field(description='"HUMAN_AGENT": only a tagged reply may still go')
    hours: int | None = Field(description="The window's length")


class ReplyOptionOut(BaseModel):
    channel_id: int
    kind: str
    name: str
    label: str
    window: WindowOut
    last_inbound_at: str | None
    can_send_text: bool
    can_send: bool = Field(description="The composer's name for can_send_text")
    tag: str | None = Field(description="The message tag a reply would carry")
    needs_template: bool
    supports_templates: bool
    text_max_length: int
    text_max_bytes: int | None
    sms: bool
    last_used: bool
    billing: str | None = Field(description="Channels billed by the message: free or billed now")
    reason: str | None = Field(description="Why text cannot be sent now")
    code: str | None


@router.get("/conversations/{conversation_id}/channels", response_model=list[ReplyOptionOut])
async def conversation_channels(conversation_id: int, who: Who, rt: RT) -> list[dict[str, Any]]:
    """Per active channel of the conversation's inbox: `window {applies, open, closes_at, tag,
    hours}` (tag = "HUMAN_AGENT" when only a person's tagged reply may still go),
    `can_send_text`, `tag` (the tag a reply would carry), `needs_template` (the window is
    closed but the channel has templates), and `reason`/`code` when text cannot be sent."""
    async with rt.db.read() as s:
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        return await gate.reply_options(rt, s, conv)
