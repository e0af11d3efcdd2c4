"""The media worker: downloads inbound attachments after their message is stored, so that
webhook acknowledgements never wait for a file.

Pending `attachment` rows are the queue (durable: a crash loses nothing). A claim is a lease
(`next_attempt_at` moved ahead); a provider hiccup backs off and retries; a download that
cannot succeed leaves the attachment with a state and a sentence agents see ("too large",
"not allowed", "failed") — the message itself is never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta

from sqlalchemy import select

from tidings.actions.base import transaction
from tidings.actions.media import do_record_download
from tidings.channels.media import MediaUnavailable
from tidings.domain.enums import Queue
from tidings.logs import CHANNEL_ID
from tidings.media import limits
from tidings.media.fetch import fetch
from tidings.media.store import make_store
from tidings.runtime import Runtime
from tidings.storage.models import Attachment, Message
from tidings.storage.types import utcnow
from tidings.workers.loop import poll

log = logging.getLogger(__name__)

BATCH = 20
PARALLEL = 4
LEASE_SECONDS = 300.0
MAX_ATTEMPTS = 5
IDLE_POLL_SECONDS = 1.0


async def claim(rt: Runtime, limit: int = BATCH) -> list[int]:
    now = utcnow()
    due = (Attachment.state == limits.PENDING) & (Attachment.next_attempt_at <= now)
    if not await rt.db.has_rows(select(Attachment.id).where(due)):
        return []
    async with rt.db.write() as s:
        order = (Attachment.next_attempt_at, Attachment.id)
        rows = await rt.db.claim(s, Attachment, due, order, limit)
        for row in rows:
            row.attempts += 1
            row.next_attempt_at = now + timedelta(seconds=LEASE_SECONDS)
        return [r.id for r in rows]


async def download_one(rt: Runtime, attachment_id: int) -> str:
    """Fetch one claimed attachment; returns its state afterwards."""
    async with rt.db.read() as s:
        att = await s.get(Attachment, attachment_id)
        message = await s.get(Message, att.message_id) if att else None
    if att is None or message is None:
        return "gone"
    CHANNEL_ID.set(message.channel_id)  # log lines name the channel (tidings/logs.py)
    channel = await rt.channels.get(message.channel_id) if message.channel_id else None
    retry: str | None = None
    outcome: tuple[str, str | None]
    if channel is None:
        outcome = (limits.FAILED, "The channel was removed before the file could be fetched.")
        fetched = None
    else:
        try:
            fetched = await fetch(
                adapter=channel.adapter,
                config=channel.config,
                workspace_id=message.workspace_id,
                provider_media_id=att.provider_media_id,
                url=att.url,
                declared_mime=att.mime_type,
                http=rt.http,
                egress=rt.egress,
                store=make_store(rt.settings),
            )
            outcome = (fetched.state, fetched.reason)
        except MediaUnavailable as exc:
            fetched = None
            outcome = (limits.FAILED, f"The file could not be downloaded: {exc.reason}")
            if exc.retriable and att.attempts < MAX_ATTEMPTS:
                retry = exc.reason
        except Exception as exc:  # a bug must not wedge the queue; the agent sees why
            log.exception("media download of attachment %s crashed", attachment_id)
            fetched = None
            outcome = (limits.FAILED, f"Internal error while downloading ({type(exc).__name__}).")
            if att.attempts < MAX_ATTEMPTS:
                retry = outcome[1]
    async with transaction(rt) as tx:
        row = await tx.session.get(Attachment, attachment_id)
        if row is None:
            return "gone"
        if retry is not None:
            delay = min(300.0, 2.0 * 3**row.attempts) * random.uniform(0.8, 1.2)
            row.next_attempt_at = utcnow() + timedelta(seconds=delay)
            row.error = retry
            return limits.PENDING
        await do_record_download(
            tx,
            row,
            state=outcome[0],
            error=outcome[1],
            storage_key=fetched.storage_key if fetched else None,
            mime_type=fetched.mime_type if fetched else None,
            size=fetched.size if fetched else None,
        )
    return outcome[0]


async def process_batch(rt: Runtime) -> bool:
    ids = await claim(rt)
    if not ids:
        return False
    slots = asyncio.Semaphore(PARALLEL)

    async def one(attachment_id: int) -> None:
        async with slots:
            await download_one(rt, attachment_id)

    await asyncio.gather(*(one(i) for i in ids))
    return len(ids) == BATCH


async def run(rt: Runtime) -> None:
    await poll(rt, process_batch, queue=Queue.MEDIA, idle=IDLE_POLL_SECONDS, what="media batch")
