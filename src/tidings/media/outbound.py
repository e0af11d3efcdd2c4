"""The files an outbound message carries, as the delivery worker hands them to an adapter."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from tidings.channels.base import OutboundAttachment
from tidings.media import limits
from tidings.media.store import make_store
from tidings.runtime import Runtime
from tidings.storage.models import Attachment


def as_outbound(rt: Runtime, rows: Sequence[Attachment]) -> tuple[OutboundAttachment, ...]:
    """Attachment rows as an adapter takes them; stored files are read only when sent."""
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
            load=partial(store.get, a.storage_key)
            if a.storage_key and a.state == limits.STORED
            else None,
        )
        for a in rows
    )
