"""Files: agents upload attachments for a reply, and read stored attachments.

Stored media is only ever served through `GET /api/v1/attachments/{id}` to a signed-in agent
(session cookie) or an API token whose agent may see the conversation — never from a public
path. Responses carry `X-Content-Type-Options: nosniff`, a type from an allow-list (anything
else is `application/octet-stream`), `Content-Disposition` (inline only for image, audio and
video types a browser shows without running anything) and private cache headers.
"""

from __future__ import annotations

import mimetypes
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from tidings.access import Principal, can_see_channel, require_conversation
from tidings.actions.base import transaction
from tidings.actions.gate import choose_route
from tidings.actions.media import attachment_for, check_upload
from tidings.api.deps import RT, Who
from tidings.api.schemas import answer
from tidings.domain.errors import InvalidInput, NotFound, PolicyRefusal
from tidings.media import limits, sending
from tidings.media.store import make_store
from tidings.runtime import ChannelInfo, Runtime
from tidings.storage.models import Channel, Conversation

router = APIRouter(prefix="/api/v1", tags=["media"])

# Multipart overhead allowed on top of the file itself when checking Content-Length.
_ENVELOPE = 64 * 1024


class UploadOut(BaseModel):
    id: int
    conversation_id: int
    filename: str | None
    mime_type: str
    size: int


class MediaLimitsOut(BaseModel):
    channel_id: int
    types: dict[str, int] = Field(
        description="MIME type, or a `type/` prefix, -> largest size in bytes"
    )
    refusal: str | None = Field(description="Why this channel cannot send stored files at all")
    caption_refusal: str | None = Field(
        description="Why a file cannot travel with text on this channel (send them apart)"
    )


@router.get(
    "/attachments/{attachment_id}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def get_attachment(attachment_id: int, who: Who, rt: RT) -> StreamingResponse:
    """The stored file, for agents who may see its conversation (404 for everyone else)."""
    att = await attachment_for(rt, who, attachment_id)
    if att.state != limits.STORED or not att.storage_key:
        raise NotFound(att.error or "this attachment has no stored file")
    store = make_store(rt.settings)
    if not await store.exists(att.storage_key):
        raise NotFound("the stored file is missing")
    content_type, disposition = limits.serving(att.mime_type)
    ext = mimetypes.guess_extension(att.mime_type or "") or ""
    filename = limits.safe_filename(att.filename, f"{att.kind}-{att.id}{ext}")
    headers = {
        "Content-Disposition": limits.content_disposition(disposition, filename),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=3600",
        "Vary": "Cookie, Authorization",
        # Opened directly, the file is a document of its own: it may run nothing.
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if att.size is not None:
        headers["Content-Length"] = str(att.size)
    return StreamingResponse(store.open(att.storage_key), media_type=content_type, headers=headers)


async def _route_channel(rt: Runtime, who: Principal, conv_id: int, channel_id: int | None) -> Any:
    async with transaction(rt) as tx:
        conv = require_conversation(who, await tx.session.get(Conversation, conv_id))
        return (await choose_route(tx, conv, channel_id)).channel


@router.post(
    "/conversations/{conversation_id}/attachments", status_code=201, response_model=UploadOut
)
async def upload_attachment(
    conversation_id: int,
    request: Request,
    who: Who,
    rt: RT,
    file: Annotated[UploadFile, File(description="The file to send")],
    channel_id: Annotated[
        int | None, Form(description="The channel the reply will use; default: the customer's")
    ] = None,
) -> dict[str, Any]:
    """Upload a file for a reply; send it with `attachment_ids` on POST .../messages. Checked
    against the channel's size and type limits now, and again when the reply is queued."""
    channel: ChannelInfo = await _route_channel(rt, who, conversation_id, channel_id)
    if (why := sending.refusal(channel, with_text=False)) is not None:
        raise PolicyRefusal(why, code="file_not_sendable")
    mime = limits.normalise_mime(file.content_type)
    if mime in (None, "application/octet-stream") and file.filename:
        mime = limits.normalise_mime(mimetypes.guess_type(file.filename)[0]) or mime
    verdict = limits.judge(channel.adapter.capabilities, channel.adapter.label, mime, None)
    if verdict.state != limits.STORED or mime is None:
        raise PolicyRefusal(verdict.reason or "The file type is unknown.", code=verdict.state)
    cap = limits.max_bytes(channel.adapter.capabilities.media_types, mime) or 0
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap + _ENVELOPE:
        raise PolicyRefusal(
            limits.judge(channel.adapter.capabilities, channel.adapter.label, mime, cap + 1).reason
            or "too large",
            code=limits.TOO_LARGE,
        )
    data = await file.read(cap + 1)
    if not data:
        raise InvalidInput("file: the file is empty")
    upload = await check_upload(
        rt,
        who,
        conversation_id,
        filename=file.filename,
        mime_type=mime,
        data=data,
        channel=channel,
    )
    return answer(UploadOut, upload)


@router.get("/channels/{channel_id}/media_limits", response_model=MediaLimitsOut)
async def media_limits(channel_id: int, who: Who, rt: RT) -> dict[str, Any]:
    """What files a reply over this channel may carry (the composer checks before uploading;
    the server checks again on upload and on send)."""
    async with rt.db.read() as s:
        row = await s.get(Channel, channel_id)
    if row is None or not can_see_channel(who, row):
        raise NotFound("channel not found")
    channel = await rt.channels.get(channel_id)
    if channel is None:
        raise NotFound("channel not found")
    caps = channel.adapter.capabilities
    return {
        "channel_id": channel_id,
        "types": dict(caps.media_types),
        "refusal": sending.refusal(channel, with_text=False),
        "caption_refusal": sending.refusal(channel, with_text=True),
    }
