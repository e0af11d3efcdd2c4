"""The `profiles` worker: fetches customer names from providers in the background.

Identities queued by `actions.profiles.mark_due` (`contact_identity.profile_due_at <= now`)
are claimed with a lease (the due time moved ahead), fetched outside any transaction through
the channel's `ProfileSource`, and recorded by `actions.profiles.do_record_profile`. A provider
hiccup retries with backoff; a refusal waits for the next day.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta

from sqlalchemy import select

from tidings.actions.base import transaction
from tidings.actions.profiles import do_profile_failed, do_record_profile
from tidings.channels.profiles import ProfileSource, ProfileUnavailable
from tidings.domain.enums import Queue
from tidings.runtime import Runtime
from tidings.storage.models import ContactIdentity
from tidings.storage.types import utcnow
from tidings.workers.loop import poll

log = logging.getLogger(__name__)

BATCH = 20
PARALLEL = 4
LEASE_SECONDS = 120.0
IDLE_POLL_SECONDS = 5.0


async def claim(rt: Runtime, limit: int = BATCH) -> list[tuple[int, int | None, str]]:
    now = utcnow()
    due = ContactIdentity.profile_due_at <= now
    if not await rt.db.has_rows(select(ContactIdentity.id).where(due)):
        return []
    async with rt.db.write() as s:
        order = (ContactIdentity.profile_due_at, ContactIdentity.id)
        rows = await rt.db.claim(s, ContactIdentity, due, order, limit)
        for row in rows:
            row.profile_due_at = now + timedelta(seconds=LEASE_SECONDS)
        return [(r.id, r.profile_channel_id, r.address) for r in rows]


async def fetch_one(rt: Runtime, identity_id: int, channel_id: int | None, address: str) -> bool:
    """Fetch and record one profile; True when a profile was recorded."""
    channel = await rt.channels.get(channel_id) if channel_id is not None else None
    retry_at = None
    profile = None
    if channel is None or not isinstance(channel.adapter, ProfileSource):
        pass  # the channel went away: nothing to ask
    else:
        try:
            profile = await channel.adapter.fetch_profile(channel.config, address, rt.http)
        except ProfileUnavailable as exc:
            log.info("profile of identity %s not fetched: %s", identity_id, exc.reason)
            if exc.retriable:
                delay = 60.0 * random.uniform(0.8, 1.2)
                retry_at = utcnow() + timedelta(seconds=delay)
        except Exception:  # a bug must not wedge the queue
            log.exception("profile fetch of identity %s crashed", identity_id)
    async with transaction(rt) as tx:
        if profile is not None:
            await do_record_profile(tx, identity_id, profile)
        else:
            await do_profile_failed(tx, identity_id, retry_at)
    return profile is not None


async def process_batch(rt: Runtime) -> bool:
    claimed = await claim(rt)
    if not claimed:
        return False
    slots = asyncio.Semaphore(PARALLEL)

    async def one(item: tuple[int, int | None, str]) -> None:
        async with slots:
            await fetch_one(rt, *item)

    await asyncio.gather(*(one(item) for item in claimed))
    return len(claimed) == BATCH


async def run(rt: Runtime) -> None:
    await poll(
        rt, process_batch, queue=Queue.PROFILES, idle=IDLE_POLL_SECONDS, what="profiles batch"
    )
