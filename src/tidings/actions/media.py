"""Media state changes: the outcome of an inbound download, agent uploads, and the attachments
a reply takes with it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.access import Principal, require_conversation
from tidings.actions.base import Tx, transaction
from tidings.domain import live_events
from tidings.domain.errors import InvalidInput, NotFound, PolicyRefusal
from tidings.media import limits, sending
from tidings.media.store import make_store, new_key, one_chunk
from tidings.runtime import ChannelInfo, Runtime
from tidings.serialize import message_dict
from tidings.storage.models import Attachment, Conversation, MediaUpload, Message
from tidings.storage.types import utcnow


async def emit_message(tx: Tx, message_id: int) -> None:
    """Announce a message again with its attachments (their state changed)."""
    message = await tx.session.get_one(Message, message_id)
    conv = await tx.session.get_one(Conversation, message.conversation_id)
    atts = await _attachments(tx.session, message_id)
    tx.emit_for(live_events.MESSAGE_UPDATED(message_dict(message, atts)), conv)


async def do_record_download(
    tx: Tx,
    attachment: Attachment,
    *,
    state: str,
    error: str | None,
    storage_key: str | None = None,
    mime_type: str | None = None,
    size: int | None = None,
) -> None:
    """Precondition: the media worker holds this pending attachment's lease."""
    attachment.state = state
    attachment.error = error
    attachment.next_attempt_at = None
    if storage_key is not None:
        attachment.storage_key = storage_key
    if mime_type is not None:
        attachment.mime_type = mime_type
    if size is not None:
        attachment.size = size
    await tx.session.flush()
    await emit_message(tx, attachment.message_id)


async def check_upload(
    rt: Runtime,
    who: Principal,
    conversation_id: int,
    *,
    filename: str | None,
    mime_type: str | None,
    data: bytes,
    channel: ChannelInfo | None,
) -> MediaUpload:
    """Store an agent's file for a later reply. With `channel`, it must fit that channel's
    limits; without, any channel of the inbox that takes it will do (the reply checks again)."""
    async with rt.db.read() as s:
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
    mime = limits.normalise_mime(mime_type)
    if mime is None:
        raise InvalidInput("file: the file type is missing or malformed")
    if not data:
        raise InvalidInput("file: the file is empty")
    if channel is not None:
        _check_fits(channel, mime, len(data), with_text=False)
    store = make_store(rt.settings)
    stored = await store.put(new_key(conv.workspace_id), one_chunk(data))
    async with transaction(rt) as tx:
        upload = MediaUpload(
            workspace_id=conv.workspace_id,
            conversation_id=conv.id,
            agent_id=who.agent_id,
            storage_key=stored.key,
            filename=limits.safe_filename(filename, "file"),
            mime_type=mime,
            size=stored.size,
            created_at=utcnow(),
        )
        tx.session.add(upload)
        await tx.session.flush()
    return upload


async def take_uploads(
    tx: Tx,
    conv: Conversation,
    upload_ids: Sequence[int],
    channel: ChannelInfo,
    *,
    with_text: bool = False,
) -> list[MediaUpload]:
    """The uploads a reply sends, checked against the chosen channel's limits (before anything
    is queued). Raises NotFound for an upload of another conversation or already sent."""
    if not upload_ids:
        return []
    if (why := sending.refusal(channel, with_text=False)) is not None:
        raise PolicyRefusal(why, code="file_not_sendable")
    if len(set(upload_ids)) != len(upload_ids):
        raise InvalidInput("attachment_ids: an upload appears twice")
    rows = {
        u.id: u
        for u in (
            await tx.session.scalars(
                select(MediaUpload).where(
                    MediaUpload.id.in_(list(upload_ids)),
                    MediaUpload.conversation_id == conv.id,
                    MediaUpload.message_id.is_(None),
                )
            )
        ).all()
    }
    missing = [i for i in upload_ids if i not in rows]
    if missing:
        raise NotFound(f"upload {missing[0]} not found (or already sent)")
    for upload in rows.values():
        _check_fits(channel, upload.mime_type, upload.size, with_text=with_text)
    return [rows[i] for i in upload_ids]


def _check_fits(channel: ChannelInfo, mime: str, size: int, *, with_text: bool) -> None:
    """Refuse a file `channel` cannot send: its kind, or its type and size (the limits)."""
    kind = limits.kind_for_mime(mime)
    if (why := sending.refusal(channel, kind=kind, with_text=with_text)) is not None:
        raise PolicyRefusal(why, code="file_not_sendable")
    verdict = limits.judge(channel.adapter.capabilities, channel.adapter.label, mime, size)
    if verdict.state != limits.STORED:
        raise PolicyRefusal(verdict.reason or "not allowed", code=verdict.state)


async def do_attach_uploads(
    tx: Tx, message: Message, uploads: Sequence[MediaUpload], caption: str | None
) -> list[Attachment]:
    """Precondition: `take_uploads` accepted these for the message's channel."""
    out = []
    for upload in uploads:
        upload.message_id = message.id
        att = Attachment(
            workspace_id=message.workspace_id,
            message_id=message.id,
            kind=limits.kind_for_mime(upload.mime_type),
            mime_type=upload.mime_type,
            filename=upload.filename,
            size=upload.size,
            caption=caption if len(uploads) == 1 else None,
            storage_key=upload.storage_key,
            state=limits.STORED,
            next_attempt_at=None,
        )
        tx.session.add(att)
        out.append(att)
    await tx.session.flush()
    return out


async def attachment_for(rt: Runtime, who: Principal, attachment_id: int) -> Attachment:
    """The attachment if `who` may see its conversation; NotFound otherwise (alike)."""
    async with rt.db.read() as s:
        row = await s.execute(
            select(Attachment, Conversation)
            .join(Message, Message.id == Attachment.message_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Attachment.id == attachment_id)
        )
        found = row.first()
    if found is None:
        raise NotFound("attachment not found")
    att, conv = found
    try:
        require_conversation(who, conv)
    except NotFound:
        raise NotFound("attachment not found") from None
    return att


async def attachments_of(rt: Runtime, message_id: int) -> list[Attachment]:
    async with rt.db.read() as s:
        return await _attachments(s, message_id)


async def _attachments(s: AsyncSession, message_id: int) -> list[Attachment]:
    query = select(Attachment).where(Attachment.message_id == message_id)
    return list((await s.scalars(query.order_by(Attachment.id))).all())
