"""Applying canonical inbound events: contacts, identities, conversations, messages, statuses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from tidings.actions import assignment, consent, csat, profiles, sla
from tidings.actions.base import Tx, lock_contacts
from tidings.actions.sms_parts import do_receive_part, part_of
from tidings.actions.workspace_settings import phone_for
from tidings.channels.media import MediaLocator
from tidings.domain import live_events
from tidings.domain.enums import (
    ConversationStatus,
    Direction,
    MessageKind,
    MessageStatus,
    Queue,
)
from tidings.domain.events import InboundMessage, Sender
from tidings.media.limits import FILE_KINDS, PENDING
from tidings.runtime import ChannelInfo
from tidings.serialize import conversation_dict, message_dict
from tidings.storage.models import (
    Attachment,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationChannel,
    Message,
)
from tidings.storage.types import utcnow

PREVIEW_LENGTH = 160


async def _identity(tx: Tx, channel: ChannelInfo, ids: Sequence[str]) -> ContactIdentity | None:
    """The identity on this channel kind known by any of `ids`, as address or alias."""
    if not ids:
        return None
    scope = (
        ContactIdentity.workspace_id == channel.workspace_id,
        ContactIdentity.channel_kind == channel.kind,
    )
    # Two lookups, each on its own index: the address (the usual hit) first.
    for column in (ContactIdentity.address, ContactIdentity.alias):
        found = await tx.session.scalar(
            select(ContactIdentity)
            .where(*scope, column.in_(ids))
            .order_by(ContactIdentity.id)
            .limit(1)
        )
        if found is not None:
            return found
    return None


def _alias_of(sender: Sender) -> str | None:
    return next((a for a in sender.aliases if a != sender.address), None)


def update_known(
    tx: Tx,
    channel: ChannelInfo,
    sender: Sender,
    phone: str | None,
    identity: ContactIdentity,
    known: Contact,
) -> None:
    """What a message from a known identity teaches about its contact (no query: both are
    loaded; the ingest batch path loads them for many senders at once)."""
    profiles.mark_due(tx, channel, identity)  # a name from the provider, in the background
    if sender.name and not known.name:
        known.name = sender.name
    alias = _alias_of(sender)
    if alias and identity.address == sender.address and identity.alias != alias:
        identity.alias = alias
    if phone is not None and sender.phone_verified:
        # e.g. a Telegram customer shares their own number after writing before: it is
        # theirs now; another contact with it shows up as a merge suggestion.
        if known.phone_e164 is None:
            known.phone_e164 = phone
    elif phone is not None and known.phone_e164 is None and known.claimed_phone is None:
        known.claimed_phone = phone


async def resolve_contact(tx: Tx, channel: ChannelInfo, sender: Sender) -> Contact:
    """The contact behind `sender`: by identity, else by verified E.164 phone, else new.

    Only a phone the provider vouches for (`sender.phone_verified`) joins an existing contact.
    A claimed one (API channel `from.phone`) is kept as the new contact's `claimed_phone`,
    which only ever makes a merge suggestion: typing someone's number must not open their
    conversation (docs/architecture.md, "Contact resolution").
    """
    s = tx.session
    # National forms ("0612345678") are read in the workspace's default region.
    phone = await phone_for(s, channel.workspace_id, sender.phone) if sender.phone else None
    identity = await _identity(tx, channel, [sender.address, *sender.aliases])
    if identity is not None:
        known = await s.get_one(Contact, identity.contact_id)
        update_known(tx, channel, sender, phone, identity, known)
        return known

    contact: Contact | None = None
    if phone is not None and sender.phone_verified:
        # Same person on another channel (e.g. SMS before WhatsApp): one contact, not two.
        contact = await s.scalar(
            select(Contact)
            .where(Contact.workspace_id == channel.workspace_id, Contact.phone_e164 == phone)
            .order_by(Contact.id)
            .limit(1)
        )
    if contact is None:
        verified = sender.phone_verified
        contact = Contact(
            workspace_id=channel.workspace_id,
            name=sender.name,
            phone_e164=phone if verified else None,
            claimed_phone=None if verified else phone,
            attributes={},
        )
        s.add(contact)
        await s.flush()
    stmt = (
        tx.rt.db.insert(ContactIdentity)
        .values(
            workspace_id=channel.workspace_id,
            contact_id=contact.id,
            channel_kind=channel.kind,
            address=sender.address,
            alias=_alias_of(sender),
            display_name=sender.name,
            created_at=utcnow(),
            **profiles.due_values(tx, channel),
        )
        .on_conflict_do_nothing(index_elements=["workspace_id", "channel_kind", "address"])
    )
    await s.execute(stmt)
    # Another worker may have created the identity first; its contact wins.
    winner = await _by_address(tx, channel, sender.address)
    if winner is not None and winner.contact_id != contact.id:
        return await s.get_one(Contact, winner.contact_id)
    return contact


async def _by_address(tx: Tx, channel: ChannelInfo, address: str) -> ContactIdentity | None:
    """The identity with this address on the channel's kind (the unique key)."""
    return await tx.session.scalar(
        select(ContactIdentity).where(
            ContactIdentity.workspace_id == channel.workspace_id,
            ContactIdentity.channel_kind == channel.kind,
            ContactIdentity.address == address,
        )
    )


async def move_identity(
    tx: Tx, channel: ChannelInfo, previous: Sequence[str], sender: Sender
) -> Contact | None:
    """The provider says the customer known by `previous` ids now goes by `sender` (WhatsApp
    `user_changed_number` / `user_changed_user_id`, docs/channels/whatsapp.md). Their identity
    takes the new address and alias — one contact, not two, and replies go to the new id; the
    old ids stop matching (a recycled number must not reach this customer's thread). Returns
    the contact, or None when no one is known by the old or the new ids."""
    s = tx.session
    old = await _identity(tx, channel, previous)
    if old is None:
        # Unknown, or already moved (a replay): the notice goes to whoever has the new id.
        current = await _identity(tx, channel, [sender.address, *sender.aliases])
        return None if current is None else await s.get_one(Contact, current.contact_id)
    contact = await s.get_one(Contact, old.contact_id)
    old_phone = f"+{old.address}" if old.address.isdigit() else None
    if old_phone is not None and sender.phone is None:
        # Only the account id changed (WhatsApp `user_changed_user_id` shares no number): the
        # number stays the address replies go to; the new id becomes its alias.
        old.alias = sender.address
        contact.updated_at = utcnow()
        await s.flush()
        return contact
    taken = await _by_address(tx, channel, sender.address)
    if taken is not None and taken.id != old.id:
        if taken.contact_id != old.contact_id:
            # The new id already wrote in as someone else: both stay; the shared verified
            # number makes them a merge suggestion for an agent to confirm.
            if sender.phone_verified and sender.phone and contact.phone_e164 is None:
                contact.phone_e164 = sender.phone
            return contact
        await s.delete(old)
        old = taken
    old.address = sender.address
    old.alias = _alias_of(sender)
    if sender.phone and sender.phone_verified and contact.phone_e164 in (None, old_phone):
        contact.phone_e164 = sender.phone
    contact.updated_at = utcnow()
    await s.flush()
    return contact


async def open_conversation(
    tx: Tx, channel: ChannelInfo, contact: Contact, *, answering: bool = True
) -> tuple[Conversation, bool]:
    """The contact's current conversation in the channel's inbox, or a new one."""
    return (await open_conversations(tx, [(channel, contact)], answering=answering))[0]


async def open_conversations(
    tx: Tx, pairs: Sequence[tuple[ChannelInfo, Contact]], *, answering: bool = True
) -> list[tuple[Conversation, bool]]:
    """`open_conversation` for many contacts at once: one lookup and one insert for all. A
    contact may appear once per inbox. (A campaign's batch has its own Core version,
    `campaigns.fanout._queue`.) `answering`: the customer is writing (not an echo of ours),
    so a resolved conversation they never wrote in is theirs to reopen."""
    s = tx.session
    if not pairs:
        return []
    contact_ids = sorted({contact.id for _channel, contact in pairs})
    await lock_contacts(tx, contact_ids)  # conversation creation, per contact
    inbox_ids = {channel.inbox_id for channel, _contact in pairs}
    current: dict[tuple[int, int], Conversation] = {}
    # By contact only (the (contact, inbox) index); the inbox is filtered here. With
    # `inbox_id IN (...)` in SQL, SQLite walks the inbox's index: every conversation of it.
    for conv in await s.scalars(
        select(Conversation)
        .where(
            Conversation.contact_id.in_(contact_ids),
            Conversation.status != ConversationStatus.RESOLVED,
        )
        .order_by(Conversation.id)
    ):
        if conv.inbox_id in inbox_ids:
            current[(conv.contact_id, conv.inbox_id)] = conv  # the latest wins
    now = utcnow()
    missing = sorted({c.id for ch, c in pairs if (c.id, ch.inbox_id) not in current})
    if missing and answering:
        # A customer answering our message in a conversation they never wrote in — a campaign
        # opens its conversations `resolved`, "awaiting reply" (docs/architecture.md,
        # Campaigns) — reopens it: the answer lands under the message it answers.
        for conv in await s.scalars(
            select(Conversation)
            .where(
                Conversation.contact_id.in_(missing),
                Conversation.status == ConversationStatus.RESOLVED,
                Conversation.last_inbound_at.is_(None),
            )
            .order_by(Conversation.id)
        ):
            if conv.inbox_id in inbox_ids:
                current[(conv.contact_id, conv.inbox_id)] = conv  # the latest wins
    out: list[tuple[Conversation, bool]] = []
    created: list[Conversation] = []
    for channel, contact in pairs:
        found = current.get((contact.id, channel.inbox_id))
        if found is not None:
            if found.status == ConversationStatus.RESOLVED:
                found.status, found.updated_at = ConversationStatus.OPEN, now
            out.append((found, found.id is None))  # None: created for an earlier pair
            continue
        conv = Conversation(
            workspace_id=channel.workspace_id,
            inbox_id=channel.inbox_id,
            contact_id=contact.id,
            status=ConversationStatus.OPEN,
            priority="none",
            unread_count=0,
            last_activity_at=now,
            created_at=now,
            updated_at=now,
        )
        current[(contact.id, channel.inbox_id)] = conv
        created.append(conv)
        out.append((conv, True))
    if created:
        s.add_all(created)
        await s.flush()
    return out


def _preview(event: InboundMessage) -> str:
    if event.text:
        return event.text[:PREVIEW_LENGTH]
    if event.kind == MessageKind.UNSUPPORTED:
        return "[unsupported message]"
    return f"[{event.kind}]"


async def do_receive_message(tx: Tx, channel: ChannelInfo, event: InboundMessage) -> Message | None:
    """Store one inbound message. Returns None when it was already stored (a duplicate), or
    when it is one part of a concatenated SMS that still waits for other parts."""
    s = tx.session
    part = part_of(event)
    if part is not None:
        joined = await do_receive_part(tx, channel, event, part)
        if joined is None:
            return None
        event = joined
    existing = await s.scalar(
        select(Message.id).where(
            Message.channel_id == channel.id,
            Message.provider_message_id == event.provider_message_id,
        )
    )
    if existing is not None:
        return None
    # A provider's notice (the customer's id changed) is shown, but the customer wrote nothing:
    # no unread count, no service window, no SLA clock.
    notice = bool(event.moved_from)
    if notice:
        moved = await move_identity(tx, channel, event.moved_from, event.sender)
        if moved is None:
            return None  # about someone we never heard from: nothing to show
        contact = moved
    else:
        contact = await resolve_contact(tx, channel, event.sender)
    # A 1-5 answer to a CSAT question stays on the resolved conversation it rates.
    answer = (
        None if event.echo or notice else await csat.survey_awaiting(tx, channel, contact, event)
    )
    latest = await csat.latest_conversation(tx, channel, contact) if notice else None
    if answer is not None:
        conv, created = await s.get_one(Conversation, answer[0].conversation_id), False
    elif latest is not None:
        conv, created = latest, False  # a notice does not reopen a resolved conversation
    else:
        conv, created = await open_conversation(tx, channel, contact, answering=not event.echo)
    now = utcnow()
    reply_to_id = None
    if event.reply_to_provider_id or event.target_provider_id:
        reply_to_id = await s.scalar(
            select(Message.id).where(
                Message.channel_id == channel.id,
                Message.provider_message_id
                == (event.reply_to_provider_id or event.target_provider_id),
            )
        )
    direction = Direction.OUT if event.echo else Direction.IN
    values = {
        "workspace_id": channel.workspace_id,
        "conversation_id": conv.id,
        "channel_id": channel.id,
        "direction": direction,
        "kind": event.kind,
        "body": event.text,
        "provider_message_id": event.provider_message_id,
        "status": MessageStatus.SENT if event.echo else MessageStatus.RECEIVED,
        "sent_at": event.occurred_at,
        "created_at": now,
        "updated_at": now,
        "reply_to_id": reply_to_id,
        "extra": dict(event.extra),
    }
    # The unique (channel_id, provider_message_id) index is the real guard against duplicates,
    # including two workers racing on PostgreSQL.
    message_id = await s.scalar(
        tx.rt.db.insert(Message)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["channel_id", "provider_message_id"])
        .returning(Message.id)
    )
    if message_id is None:
        return None
    attachments = new_attachments(tx, channel, event, message_id, now)
    s.add_all(attachments)
    if attachments:
        await s.flush()
    message = await s.get_one(Message, message_id)

    if not event.echo and not notice:
        conv.last_inbound_at = _later(conv.last_inbound_at, event.occurred_at)
        if answer is None:
            conv.unread_count += 1
        if conv.status == ConversationStatus.SNOOZED:
            conv.status = ConversationStatus.OPEN
            conv.snoozed_until = None
        await _touch_window(tx, conv.id, channel.id, event.occurred_at)
    conv.last_activity_at = _later(conv.last_activity_at, event.occurred_at) or now
    conv.last_message_preview = _preview(event)
    conv.last_channel_id = channel.id
    conv.updated_at = now
    await s.flush()

    data = conversation_dict(conv)
    kind = live_events.CONVERSATION_CREATED if created else live_events.CONVERSATION_UPDATED
    tx.emit_for(kind(data), conv)
    tx.emit_for(live_events.MESSAGE_CREATED(message_dict(message, attachments)), conv)
    if notice:
        return message
    await consent.do_after_inbound(tx, channel, event, contact, conv, message)
    if answer is not None:
        await csat.do_record_answer(tx, answer[0], message, answer[1])
    elif not event.echo:
        await sla.on_customer_message(tx, conv)
        if conv.assignee_id is None:
            assignment.after_change(tx)
    return message


async def _touch_window(tx: Tx, conversation_id: int, channel_id: int, at: datetime) -> None:
    row = await tx.session.get(ConversationChannel, (conversation_id, channel_id))
    if row is None:
        tx.session.add(
            ConversationChannel(
                conversation_id=conversation_id, channel_id=channel_id, last_inbound_at=at
            )
        )
    else:
        row.last_inbound_at = _later(row.last_inbound_at, at)


def new_attachments(
    tx: Tx, channel: ChannelInfo, event: InboundMessage, message_id: int, now: datetime
) -> list[Attachment]:
    """The rows of a stored message's attachments (not added to the session). Adapters that
    can fetch their media queue each file for the media worker (tidings.media)."""
    fetches = isinstance(channel.adapter, MediaLocator)
    out = []
    for ref in event.attachments:
        queued = fetches and ref.kind in FILE_KINDS
        out.append(
            Attachment(
                workspace_id=channel.workspace_id,
                message_id=message_id,
                kind=ref.kind,
                mime_type=ref.mime_type,
                filename=ref.filename,
                size=ref.size,
                caption=ref.caption,
                provider_media_id=ref.provider_media_id,
                url=ref.url,
                state=PENDING if queued else None,
                next_attempt_at=now if queued else None,
            )
        )
        if queued:
            tx.wake_after_commit(Queue.MEDIA)
    return out


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
