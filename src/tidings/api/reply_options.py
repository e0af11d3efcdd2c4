"""Reply options: through which of the conversation's channels an agent's reply may go now,
with which message tag, and why not (`actions/gate.py`, the decision the send takes). The
composer's picker (`/api/v1/ui/conversations/{id}/context`, `routes`) serves the same list."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tidings.access import require_conversation
from tidings.actions import gate
from tidings.api.deps import RT, Who
from tidings.storage.models import Conversation

router = APIRouter(prefix="/api/v1", tags=["conversations"])


@router.get("/conversations/{conversation_id}/channels")
async def conversation_channels(conversation_id: int, who: Who, rt: RT) -> list[dict[str, Any]]:
    """Per active channel of the conversation's inbox: `window {applies, open, closes_at, tag,
    hours}` (tag = "HUMAN_AGENT" when only a person's tagged reply may still go),
    `can_send_text`, `tag` (the tag a reply would carry), `needs_template` (the window is
    closed but the channel has templates), and `reason`/`code` when text cannot be sent."""
    async with rt.db.read() as s:
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        return await gate.reply_options(rt, s, conv)
