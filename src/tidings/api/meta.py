"""What may be sent now, per conversation and channel: the service window (with the
HUMAN_AGENT extension where the channel has it), whether free text may go, or a template is
needed. Same auth and error shape as the REST API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy import select

from tidings.access import Principal, require_conversation
from tidings.api.auth import authenticate
from tidings.api.v1 import runtime
from tidings.domain.enums import ConsentStatus, MessageKind
from tidings.domain.errors import PolicyRefusal
from tidings.policy import OutboundContext, check_consent, check_window, service_window
from tidings.runtime import Runtime
from tidings.serialize import ts
from tidings.storage.models import (
    Channel,
    Consent,
    ContactIdentity,
    Conversation,
    ConversationChannel,
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
        channels = (
            await s.scalars(
                select(Channel)
                .where(Channel.inbox_id == conv.inbox_id, Channel.active.is_(True))
                .order_by(Channel.id)
            )
        ).all()
        kinds = set(
            (
                await s.scalars(
                    select(ContactIdentity.channel_kind).where(
                        ContactIdentity.contact_id == conv.contact_id
                    )
                )
            ).all()
        )
        opted_out = set(
            (
                await s.scalars(
                    select(Consent.channel_kind).where(
                        Consent.contact_id == conv.contact_id,
                        Consent.status == ConsentStatus.OPTED_OUT,
                    )
                )
            ).all()
        )
        lasts = {
            row.channel_id: row.last_inbound_at
            for row in await s.scalars(
                select(ConversationChannel).where(ConversationChannel.conversation_id == conv.id)
            )
        }
    out = []
    for c in channels:
        info = await rt.channels.get(c.id)
        if info is None:
            continue
        caps = info.adapter.capabilities
        human = getattr(info.config, "human_agent", False) is True
        last_in = lasts.get(c.id)
        window = service_window(caps, last_in, now, human_agent=human)
        reason: str | None = None
        code: str | None = None
        if c.kind not in kinds:
            reason, code = f"This customer has no {info.adapter.label} identity.", "no_identity"
        else:
            ctx = OutboundContext(
                channel_kind=c.kind,
                channel_label=info.adapter.label,
                capabilities=caps,
                kind=MessageKind.TEXT,
                text="-",
                last_inbound_at=last_in,
                opted_out=c.kind in opted_out,
                now=now,
                human_agent=human,
            )
            for check in (check_consent, check_window):
                try:
                    check(ctx)
                except PolicyRefusal as refusal:
                    reason, code = refusal.message, refusal.code
                    break
        out.append(
            {
                "channel_id": c.id,
                "kind": c.kind,
                "name": c.name,
                "window": {
                    "applies": window.applies,
                    "open": window.open,
                    "closes_at": ts(window.closes_at),
                    "tag": window.tag,
                    "hours": caps.service_window_hours,
                },
                "last_inbound_at": ts(last_in),
                "can_send_text": reason is None,
                "needs_template": code == "window_closed" and caps.supports_templates,
                "supports_templates": caps.supports_templates,
                "text_max_length": caps.text_max_length,
                "text_max_bytes": caps.text_max_bytes,
                "reason": reason,
                "code": code,
            }
        )
    return out
