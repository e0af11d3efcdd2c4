"""Customer names from the providers' profile APIs (`channels.profiles.ProfileSource`).

An identity on a channel that has a profile source is queued (`profile_due_at`) when the
customer writes and its profile is missing or more than a day old; the `profiles` worker
(`tidings.workers.profiles`) fetches it in the background and records it here. Nothing on
the inbound path waits for a provider.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from tidings.actions.base import Tx
from tidings.channels.profiles import Profile, ProfileSource
from tidings.domain import live_events
from tidings.domain.enums import Queue
from tidings.runtime import ChannelInfo
from tidings.storage.models import Contact, ContactIdentity, Conversation
from tidings.storage.types import utcnow

# A profile is asked for at most once a day per identity.
MAX_AGE = timedelta(days=1)


def has_profiles(channel: ChannelInfo) -> bool:
    return isinstance(channel.adapter, ProfileSource)


def due_values(tx: Tx, channel: ChannelInfo) -> dict[str, Any]:
    """Columns for a new identity: queued for a profile when the channel has a source."""
    if not has_profiles(channel):
        return {}
    tx.wake_after_commit(Queue.PROFILES)
    return {"profile_due_at": utcnow(), "profile_channel_id": channel.id}


def mark_due(tx: Tx, channel: ChannelInfo, identity: ContactIdentity) -> None:
    """Queue `identity` for a profile fetch if it has none or an old one (no query: the
    identity is already loaded)."""
    if identity.profile_due_at is not None or not has_profiles(channel):
        return
    now = utcnow()
    if identity.profile_fetched_at is not None and now - identity.profile_fetched_at < MAX_AGE:
        return
    identity.profile_due_at = now
    identity.profile_channel_id = channel.id
    tx.wake_after_commit(Queue.PROFILES)


async def do_record_profile(tx: Tx, identity_id: int, profile: Profile) -> None:
    """Keep the provider's name on the identity, and on the contact unless someone named the
    contact otherwise (an agent's edit, a name from another channel)."""
    s = tx.session
    identity = await s.get(ContactIdentity, identity_id)
    if identity is None:
        return
    identity.profile_due_at = None
    identity.profile_fetched_at = utcnow()
    # A username alone is a handle (shown when nothing better is known), not a name.
    shown = profile.name or (f"@{profile.username}" if profile.username else None)
    contact = await s.get(Contact, identity.contact_id)
    if contact is not None and profile.picture_url:
        attributes = dict(contact.attributes or {})
        if attributes.get("picture_url") != profile.picture_url:
            attributes["picture_url"] = profile.picture_url
            contact.attributes = attributes
    if shown is None or shown == identity.display_name:
        return
    previous = identity.display_name
    identity.display_name = shown
    if contact is not None and profile.name and (not contact.name or contact.name == previous):
        contact.name = profile.name
        contact.updated_at = utcnow()
    await s.flush()
    await do_announce_contact(tx, identity.workspace_id, identity.contact_id)


async def do_announce_contact(tx: Tx, workspace_id: int, contact_id: int) -> None:
    """`contact.updated` (a fetched name, an agent's edit), told per inbox: only agents who can
    see one of the contact's conversations learn it; the inbox refreshes those conversations.
    Not `conversation.updated`: automation rules listen to that, and a new name changes
    nothing about a conversation."""
    by_inbox: dict[int, list[int]] = {}
    for conv_id, inbox_id in await tx.session.execute(
        select(Conversation.id, Conversation.inbox_id).where(Conversation.contact_id == contact_id)
    ):
        by_inbox.setdefault(inbox_id, []).append(conv_id)
    for inbox_id, conv_ids in by_inbox.items():
        tx.emit(
            live_events.CONTACT_UPDATED({"id": contact_id, "conversation_ids": sorted(conv_ids)}),
            workspace_id,
            inbox_id,
        )


async def do_profile_failed(tx: Tx, identity_id: int, retry_at: datetime | None) -> None:
    """No profile now: try again at `retry_at`, or (None) not before the next day's message."""
    identity = await tx.session.get(ContactIdentity, identity_id)
    if identity is None:
        return
    identity.profile_due_at = retry_at
    if retry_at is None:
        identity.profile_fetched_at = utcnow()
