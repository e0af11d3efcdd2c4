"""What may be sent now, per conversation and channel: the service window (with the
HUMAN_AGENT extension where the channel has it), whether free text may go, or a template is
needed. Same auth and error shape as the REST API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from tidings.access import Principal, require_conversation
from tidings.actions import reply_policy
from tidings.api.auth import authenticate
from tidings.api.deps import runtime
from tidings.runtime import Runtime
from tidings.serialize import ts
from tidings.storage.models import (
    Conversation,
)
from tidings.storage.types import utcnow

router = APIRouter(prefix="/api/v1", tags=["conversations"])
Who = Annotated[Principal, Depends(authenticate)]
RT = Annotated[Runtime, Depends(runtime)]


@router.get("/conversations/{conversation_id}/channels")
async def conversation_channels(conversation_id: int, who: Who, rt: RT) -> list[dict[str, Any]]:
    """Per active channel of the conversation's inbox: `window {applies, open, closes_at, tag}`
    (tag = "HUMAN_AGENT" when only a person's tagged reply may still go), `can_send_text`,
    `needs_template` (the window is closed but the channel has templates), and `reason`/`code`
    when text cannot be sent."""
    now = utcnow()
    async with rt.db.read() as s:
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        # The decision `POST …/messages` takes (actions/reply_policy.py).
        verdicts = await reply_policy.reply_verdicts(rt, s, conv, now)
    out = []
    for v in verdicts:
        caps = v.channel.adapter.capabilities
        code = v.refusal.code if v.refusal else None
        out.append(
            {
                "channel_id": v.channel.id,
                "kind": v.channel.kind,
                "name": v.channel.name,
                "window": {
                    "applies": v.window.applies,
                    "open": v.window.open,
                    "closes_at": ts(v.window.closes_at),
                    "tag": v.window.tag,
                    "hours": caps.service_window_hours,
                },
                "last_inbound_at": ts(v.last_inbound_at),
                "can_send_text": v.allowed,
                "needs_template": code == "window_closed" and caps.supports_templates,
                "supports_templates": caps.supports_templates,
                "text_max_length": caps.text_max_length,
                "text_max_bytes": caps.text_max_bytes,
                "reason": v.refusal.message if v.refusal else None,
                "code": code,
            }
        )
    return out
