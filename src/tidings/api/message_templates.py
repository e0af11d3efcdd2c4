"""Provider templates over the REST API: sync a channel's list from the provider, list it with
what each template needs, and sender signals (mark as read, typing). Templates, interactive
messages and reactions are sent with POST /conversations/{id}/messages (see `send_rich`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from tidings.access import Principal, require_channel
from tidings.actions import rich
from tidings.actions.templates import (
    ButtonValue,
    HeaderMedia,
    TemplateSpec,
    body_text,
    check_send_template_spec,
    check_sync_templates,
)
from tidings.api import schemas as sc
from tidings.api.deps import RT, Who
from tidings.channels.message_templates import needs
from tidings.runtime import Runtime
from tidings.storage.models import Message
from tidings.storage.models import Template as TemplateRow

router = APIRouter(prefix="/api/v1")


@router.post(
    "/channels/{channel_id}/templates/sync", response_model=sc.TemplateSyncOut, tags=["channels"]
)
async def sync_channel_templates(channel_id: int, who: Who, rt: RT) -> dict[str, Any]:
    """Fetch the channel's templates from the provider now (WhatsApp: every page of
    `GET /{waba_id}/message_templates`) and upsert them. Admins only. Status changes also
    arrive by webhook (`message_template_status_update`)."""
    return await check_sync_templates(rt, who, channel_id)


@router.get(
    "/channels/{channel_id}/templates", response_model=list[sc.TemplateOut], tags=["channels"]
)
async def list_channel_templates(channel_id: int, who: Who, rt: RT) -> list[dict[str, Any]]:
    """The channel's templates with status, components and what a send must give
    (`needs`: parameter format, header, body parameters, buttons that take a value)."""
    async with rt.db.read() as s:
        await require_channel(s, who, channel_id)
        rows = (
            await s.scalars(
                select(TemplateRow)
                .where(TemplateRow.channel_id == channel_id)
                .order_by(TemplateRow.name, TemplateRow.language)
            )
        ).all()
    return [
        sc.answer(
            sc.TemplateOut,
            t,
            body=body_text(t),
            components=list(t.components or []),
            needs=needs(list(t.components or [])).public(),
        )
        for t in rows
    ]


@router.post(
    "/conversations/{conversation_id}/signals", response_model=sc.SignalOut, tags=["conversations"]
)
async def send_signal(conversation_id: int, body: sc.SignalIn, who: Who, rt: RT) -> dict[str, Any]:
    """Tell the customer's app that the business read their messages (`mark_read`: WhatsApp
    `status: read` on their latest message, Messenger/Instagram `mark_seen`) or is typing
    (`typing_on`/`typing_off`). Sent at once, not queued; nothing is stored."""
    channel_id = await rich.check_send_signal(
        rt, who, conversation_id, body.action, body.channel_id
    )
    return {"ok": True, "action": body.action, "channel_id": channel_id}


def _spec(t: sc.TemplateIn) -> TemplateSpec:
    media = t.header_media
    return TemplateSpec(
        parameters=t.parameters,
        header_parameters=t.header_parameters,
        header_media=HeaderMedia(media.type, media.link, media.media_id, media.filename)
        if media
        else None,
        buttons=tuple(ButtonValue(b.index, b.payload, b.text, b.coupon_code) for b in t.buttons),
    )


async def send_rich(
    rt: Runtime, who: Principal, conversation_id: int, body: sc.ReplyIn
) -> Message | None:
    """POST /conversations/{id}/messages with `template`, `interactive` or `reaction` (ReplyIn
    lets each go only alone, without text or files); None for a plain reply."""
    template, interactive, reaction = body.template, body.interactive, body.reaction
    if template is not None:
        return await check_send_template_spec(
            rt,
            who,
            conversation_id,
            name=template.name,
            language=template.language,
            template_id=template.template_id,
            spec=_spec(template),
            channel_id=body.channel_id,
        )
    if interactive is not None:
        return await rich.check_send_interactive(
            rt, who, conversation_id, rich.choices(interactive.model_dump()), body.channel_id
        )
    if reaction is not None:
        return await rich.check_send_reaction(
            rt, who, conversation_id, reaction.message_id, reaction.emoji, body.channel_id
        )
    return None
