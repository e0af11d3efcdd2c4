"""Which channel a contact prefers, and why.

Explicit: an agent set it, or the customer opted in on a channel (`source` says which); stored
in `ContactPreference`. Learned, when nothing explicit applies: the channel the customer last
wrote from, else the channel that last delivered one of our messages to them. Replies without
a `channel_id` and campaigns try the preferred channel first.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.access import Principal, can_see_channel, contact_inboxes, require_contact
from tidings.actions.base import transaction
from tidings.domain import live_events
from tidings.domain.enums import Direction, MessageStatus
from tidings.domain.errors import InvalidInput
from tidings.runtime import Runtime
from tidings.storage.models import Channel, ContactPreference, Conversation, Message
from tidings.storage.types import utcnow

EXPLICIT_SOURCES = ("agent", "customer")


@dataclass(frozen=True, slots=True)
class Preference:
    channel_id: int | None
    kind: str | None
    # explicit | learned | none
    source: str
    # A sentence for people: why this channel.
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "channel_id": self.channel_id,
            "kind": self.kind,
            "source": self.source,
            "reason": self.reason,
        }


NONE = Preference(None, None, "none", "No preference: nothing set and no messages yet.")


async def preferred_channel(
    s: AsyncSession, contact_id: int, allowed: Collection[int] | None = None
) -> Preference:
    """The contact's preferred channel among `allowed` (None: any active channel)."""

    def ok(channel_id: int | None) -> bool:
        return channel_id is not None and (allowed is None or channel_id in allowed)

    explicit = await s.get(ContactPreference, contact_id)
    if explicit is not None and ok(explicit.channel_id):
        ch = await s.get(Channel, explicit.channel_id)
        if ch is not None and ch.active:
            who = "an agent" if explicit.source == "agent" else "the customer"
            return Preference(
                ch.id, ch.kind, "explicit", f"Set by {who} ({explicit.source}) to {ch.name}."
            )
    learned = (
        (
            Direction.IN,
            (MessageStatus.RECEIVED,),
            "The customer last wrote from {name}.",
        ),
        (
            Direction.OUT,
            (MessageStatus.DELIVERED, MessageStatus.READ),
            "{name} last delivered a message to the customer.",
        ),
    )
    for direction, statuses, sentence in learned:
        q = (
            select(Message.channel_id, Channel.kind, Channel.name)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(Channel, Channel.id == Message.channel_id)
            .where(
                Conversation.contact_id == contact_id,
                Message.direction == direction,
                Message.status.in_(statuses),
                Channel.active.is_(True),
            )
            .order_by(Message.sent_at.desc(), Message.id.desc())
            .limit(1)
        )
        if allowed is not None:
            q = q.where(Message.channel_id.in_(list(allowed)))
        row = (await s.execute(q)).first()
        if row is not None:
            return Preference(row[0], row[1], "learned", sentence.format(name=row[2]))
    return NONE


async def check_get_preference(rt: Runtime, who: Principal, contact_id: int) -> Preference:
    async with rt.db.read() as s:
        await require_contact(s, who, contact_id)
        return await preferred_channel(s, contact_id)


async def check_set_preference(
    rt: Runtime, who: Principal, contact_id: int, channel_id: int | None, source: str = "agent"
) -> Preference:
    """Set (or with `channel_id=None`, clear) the contact's explicit preference."""
    if source not in EXPLICIT_SOURCES:
        raise InvalidInput(f"source: one of {', '.join(EXPLICIT_SOURCES)}")
    async with transaction(rt) as tx:
        s = tx.session
        contact = await require_contact(s, who, contact_id)
        row = await s.get(ContactPreference, contact_id)
        if channel_id is None:
            if row is not None:
                await s.delete(row)
        else:
            ch = await s.get(Channel, channel_id)
            if ch is None or not can_see_channel(who, ch):
                raise InvalidInput(f"channel_id: {channel_id} is not a channel you can use")
            if not ch.active:
                raise InvalidInput(f"channel_id: channel {ch.name!r} is not active")
            if row is None:
                row = ContactPreference(contact_id=contact_id, workspace_id=contact.workspace_id)
                s.add(row)
            row.channel_id, row.source = ch.id, source
            row.set_by_agent_id, row.updated_at = who.agent_id, utcnow()
        await s.flush()
        pref = await preferred_channel(s, contact_id)
        tx.emit(
            live_events.CONTACT_PREFERENCE({"contact_id": contact_id, **pref.as_dict()}),
            contact.workspace_id,
            None,
            await contact_inboxes(s, [contact_id]),
        )
        return pref


async def reply_order(s: AsyncSession, contact_id: int, candidates: list[int]) -> list[int]:
    """Hook for `gate.choose_route` (replies without a channel): `candidates` with the
    contact's preferred channel moved to the front."""
    pref = await preferred_channel(s, contact_id, candidates)
    if pref.channel_id is None or pref.channel_id not in candidates:
        return candidates
    return [pref.channel_id, *[c for c in candidates if c != pref.channel_id]]
