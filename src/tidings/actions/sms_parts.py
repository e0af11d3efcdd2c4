"""Joining concatenated inbound SMS
(docs/providers/sms-encoding.md#concatenation, docs/providers/sms-encoding.md#segments).

A long SMS travels as parts that each carry (reference, total, sequence): the UDH IE 0x00/0x08
or the SAR TLVs on SMPP, `concat-ref` / `concat-total` / `concat-part` on Vonage. Twilio joins
parts itself and posts one message (with `NumSegments`), so nothing reaches this module from it.

Adapters mark a part with `extra["concat"] = {"ref", "part", "total"}`. Each part is stored in
`sms_part` as it comes, in any order; repeats of a pending part are no-ops (the partial unique
index), and a repeat of a part already joined within `REPEAT_WINDOW` is recognised by its
content and dropped. When the last part is in, the parts are joined in sequence order into one
message, stored once: its provider id is that of part 1, so the unique message index holds even
if two joins ever raced.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, select, text, update

from tidings.actions.base import Tx
from tidings.domain.events import InboundMessage
from tidings.runtime import ChannelInfo
from tidings.storage.models import SmsPart
from tidings.storage.types import utcnow

# Parts of one message arrive within seconds to minutes; a repeat of an already joined part
# later than this is no longer recognised (and joined rows older than a day are removed).
REPEAT_WINDOW = timedelta(hours=1)
KEEP_JOINED = timedelta(days=1)
MAX_PARTS = 255  # an 8-bit count (docs/providers/sms-encoding.md#segments)


@dataclass(frozen=True, slots=True)
class Part:
    ref: str
    seq: int
    total: int


def part_of(event: InboundMessage) -> Part | None:
    """The concatenation info of an inbound SMS part, or None for a whole message."""
    info: Any = event.extra.get("concat") if event.extra else None
    if not isinstance(info, dict) or event.echo:
        return None
    try:
        seq, total = int(info["part"]), int(info["total"])
    except (KeyError, TypeError, ValueError):
        return None
    ref = str(info.get("ref") or "").strip()
    if not ref or not 1 <= seq <= total <= MAX_PARTS or total == 1:
        return None
    return Part(ref=ref[:64], seq=seq, total=total)


def _lock_key(channel_id: int, sender: str, ref: str) -> int:
    digest = hashlib.blake2b(f"{channel_id}:{sender}:{ref}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def do_receive_part(
    tx: Tx, channel: ChannelInfo, event: InboundMessage, part: Part
) -> InboundMessage | None:
    """Record one part. Returns the joined message when this part completes it, else None."""
    s = tx.session
    sender = event.sender.address[:255]
    body = event.text or ""
    if not tx.rt.db.is_sqlite:
        # Two workers holding two parts of one message must not each see only their own:
        # serialise per (channel, sender, ref) until commit. SQLite has a single writer.
        await s.execute(
            text("SELECT pg_advisory_xact_lock(:key)"),
            {"key": _lock_key(channel.id, sender, part.ref)},
        )
    now = utcnow()
    group = and_(
        SmsPart.channel_id == channel.id,
        SmsPart.sender == sender,
        SmsPart.ref == part.ref,
        SmsPart.total == part.total,
    )
    repeat = await s.scalar(
        select(SmsPart.id)
        .where(
            group,
            SmsPart.seq == part.seq,
            SmsPart.body == body,
            SmsPart.joined_at.is_not(None),
            SmsPart.joined_at > now - REPEAT_WINDOW,
        )
        .limit(1)
    )
    if repeat is not None:
        return None  # a late repeat of a part whose message is already in the inbox
    await s.execute(
        tx.rt.db.insert(SmsPart)
        .values(
            workspace_id=channel.workspace_id,
            channel_id=channel.id,
            sender=sender,
            ref=part.ref,
            total=part.total,
            seq=part.seq,
            body=body,
            provider_message_id=event.provider_message_id[:255],
            occurred_at=event.occurred_at,
            created_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=["channel_id", "sender", "ref", "total", "seq"],
            index_where=SmsPart.joined_at.is_(None),
        )
    )
    pending = (await s.scalars(select(SmsPart).where(group, SmsPart.joined_at.is_(None)))).all()
    by_seq = {p.seq: p for p in pending}
    if len(by_seq) < part.total:
        return None
    ordered = [by_seq[n] for n in range(1, part.total + 1)]
    await s.execute(
        update(SmsPart)
        .where(SmsPart.id.in_([p.id for p in ordered]))
        .values(joined_at=now)
        .execution_options(synchronize_session=False)
    )
    await s.execute(
        delete(SmsPart).where(
            SmsPart.channel_id == channel.id, SmsPart.joined_at < now - KEEP_JOINED
        )
    )
    times = [p.occurred_at for p in ordered if p.occurred_at is not None]
    extra = dict(event.extra)
    extra["concat"] = {
        "ref": part.ref,
        "total": part.total,
        "part_ids": [p.provider_message_id for p in ordered],
    }
    return replace(
        event,
        provider_message_id=ordered[0].provider_message_id,
        text="".join(p.body for p in ordered),
        occurred_at=min(times) if times else event.occurred_at,
        extra=extra,
    )
