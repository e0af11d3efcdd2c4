"""The files an outbound message carries, as the delivery worker hands them to an adapter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import select

from tidings.channels.base import OutboundAttachment
from tidings.media import limits
from tidings.media.store import MediaStore, make_store
from tidings.runtime import Runtime
from tidings.storage.models import Attachment


def _loader(store: MediaStore, key: str) -> Callable[[], Awaitable[bytes]]:
    async def load() -> bytes:
        return await store.get(key)

    return load


async def outbound_attachments(rt: Runtime, message_id: int) -> tuple[OutboundAttachment, ...]:
    async with rt.db.read() as s:
        rows = (
            await s.scalars(
                select(Attachment)
                .where(Attachment.message_id == message_id)
                .order_by(Attachment.id)
            )
        ).all()
    if not rows:
        return ()
    store = make_store(rt.settings)
    return tuple(
        OutboundAttachment(
            kind=a.kind,
            url=a.url,
            provider_media_id=a.provider_media_id,
            mime_type=a.mime_type,
            filename=a.filename,
            caption=a.caption,
            load=_loader(store, a.storage_key)
            if a.storage_key and a.state == limits.STORED
            else None,
        )
        for a in rows
    )
