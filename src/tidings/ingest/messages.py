"""The customer lane's batch processor: messages, edits, reactions, opt-outs, postbacks and
channel events — what a person is waiting for.

The common shape — a customer's message, new or from someone known — is applied as a set: a
run of such rows is parsed, then the stored duplicates, the senders' identities and contacts,
their open conversations, the reply targets and the service-window rows are each looked up in
one query for the whole run, new contacts, identities and conversations are created in one
statement each, and the messages are inserted in one multi-row `INSERT … ON CONFLICT DO
NOTHING`. Then each message is applied in provider order with those maps, by the same rules as
the per-event path (`actions/inbound.do_receive_message`): counters, windows, SLA, assignment,
live events (one `message.created` per message: agents see each one).

The rare shapes — SMS parts, notices of a changed id, CSAT answers, consent keywords and
provider opt-outs, echoes, channel events — go through the per-event path (`ingest/rows.py`)
in their place in the order. A run that fails as a set is rolled back to its savepoint and
applied again one event at a time, so one bad event fails alone (docs/architecture.md,
"Inbound lanes").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from tidings.actions import assignment, consent, csat, profiles, sla
from tidings.actions.base import Tx
from tidings.actions.inbound import (
    _later,
    _preview,
    new_attachments,
    open_conversations,
    update_known,
)
from tidings.actions.sms_parts import part_of
from tidings.actions.workspace_settings import phone_for
from tidings.domain import live_events
from tidings.domain.enums import (
    ConversationStatus,
    Direction,
    InboundState,
    MessageKind,
    MessageStatus,
)
from tidings.domain.events import Ignored, InboundMessage
from tidings.ingest.rows import batch_touches, process_rows, touch_channels
from tidings.metrics import INGESTED
from tidings.runtime import ChannelInfo
from tidings.serialize import conversation_dict, message_dict
from tidings.storage.db import chunks
from tidings.storage.models import (
    Attachment,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationChannel,
    InboundEvent,
    Message,
)
from tidings.storage.types import utcnow

log = logging.getLogger(__name__)

# Rows applied as one set between two `should_yield()` checks: large enough that the lookups
# are shared, small enough that waiting webhooks get the write lock back soon.
RUN = 50
# Values per IN list (well under SQLite's and asyncpg's parameter limits).
CHUNK = 500


@dataclass(slots=True)
class _Row:
    row: InboundEvent
    channel: ChannelInfo
    messages: list[InboundMessage]


@dataclass(slots=True)
class _Msg:
    channel: ChannelInfo
    event: InboundMessage
    phone: str | None = None
    identity: ContactIdentity | None = None
    contact: Contact | None = None
    # The first message of a sender unknown before this run: it creates the contact (the
    # per-event path learns nothing more from it); later ones update it like any known one.
    creates: bool = False
    conv: Conversation | None = None
    created: bool = False


async def apply_customer_rows(
    tx: Tx, rows: Sequence[InboundEvent], should_yield: Callable[[], bool]
) -> int:
    """Apply a batch of customer-lane rows, setting each row's state. Returns how many rows
    were handled (the rest are left untouched for the next round)."""
    async with batch_touches(tx):
        return await _apply_customer_rows(tx, rows, should_yield)


async def _apply_customer_rows(
    tx: Tx, rows: Sequence[InboundEvent], should_yield: Callable[[], bool]
) -> int:
    keywords = consent.keyword_settings()
    handled = 0
    run: list[_Row] = []

    async def flush_run() -> bool:
        """Apply the pending run; False when it stopped part-way (webhooks are waiting)."""
        nonlocal handled
        if not run:
            return True
        count = await _apply_run(tx, run, should_yield)
        handled += count
        complete = count == len(run)
        run.clear()
        return complete

    for row in rows:
        channel = await tx.rt.channels.get(row.channel_id)
        messages = _simple_messages(channel, row, keywords) if channel is not None else None
        if channel is not None and messages is not None:
            run.append(_Row(row, channel, messages))
            if len(run) < RUN:
                continue
            if not await flush_run():
                return handled
        else:
            # A rare shape (or a row that does not parse): in its place, on the per-event path.
            if not await flush_run() or (handled and should_yield()):
                return handled
            handled += await process_rows(tx, [row], lambda: False)
        if should_yield():
            return handled
    await flush_run()
    return handled


def _simple_messages(
    channel: ChannelInfo, row: InboundEvent, keywords: consent.KeywordSettings
) -> list[InboundMessage] | None:
    """The row's customer messages when all are of the common shape, else None."""
    try:
        events = channel.adapter.parse(channel.config, row.payload)
    except Exception:
        return None  # the per-event path records the failure
    out: list[InboundMessage] = []
    for event in events:
        if isinstance(event, Ignored):
            continue
        if not isinstance(event, InboundMessage):
            return None
        if (
            event.echo
            or event.moved_from
            or event.consent is not None
            or part_of(event) is not None
            or csat.parse_rating(event) is not None
        ):
            return None
        if (
            channel.adapter.capabilities.sms
            and event.kind == MessageKind.TEXT
            and keywords.match(event.text) is not None
        ):
            return None
        out.append(event)
    return out


async def _apply_run(tx: Tx, run: list[_Row], should_yield: Callable[[], bool]) -> int:
    """Apply `run` as a set in a savepoint; if that fails, one by one (each isolated)."""
    events_before, wakes_before = len(tx.events), set(tx.wakes)
    try:
        async with tx.session.begin_nested():
            latest = await _apply_set(tx, run)
    except Exception:
        log.warning(
            "a run of %d customer events failed as a set; applying them one by one",
            len(run),
            exc_info=True,
        )
        del tx.events[events_before:]
        tx.wakes.clear()
        tx.wakes.update(wakes_before)
        await _forget_loaded(tx)
        return await process_rows(tx, [r.row for r in run], should_yield)
    await _mark_done(tx, [r.row for r in run])
    await touch_channels(tx, latest)
    return len(run)


async def _forget_loaded(tx: Tx) -> None:
    """After a rolled-back run: the session still holds objects loaded inside it — identities
    of rows that no longer exist, whose ids SQLite hands out again — and would return them for
    new rows with those ids. Keep only the claimed inbound rows (flushed first, so nothing of
    the earlier runs is lost); everything else is read again from the database."""
    s = tx.session
    await s.flush()
    for obj in list(s.identity_map.values()):
        if not isinstance(obj, InboundEvent):
            s.expunge(obj)


async def _mark_done(tx: Tx, rows: list[InboundEvent]) -> None:
    """`rows.done` for many rows in one UPDATE; the loaded objects are told the new values as
    already stored, so the commit's flush does not update them again one by one."""
    now = utcnow()
    await tx.session.execute(
        update(InboundEvent)
        .where(InboundEvent.id.in_([row.id for row in rows]))
        .values(
            state=InboundState.DONE,
            error=None,
            processed_at=now,
            attempts=InboundEvent.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    for row in rows:
        for name, value in (
            ("state", InboundState.DONE),
            ("error", None),
            ("processed_at", now),
            ("attempts", row.attempts + 1),
        ):
            set_committed_value(row, name, value)
    INGESTED.labels("done").inc(len(rows))


async def _apply_set(tx: Tx, run: list[_Row]) -> dict[int, datetime]:
    s = tx.session
    latest: dict[int, datetime] = {}
    for r in run:
        for event in r.messages:
            latest[r.channel.id] = event.occurred_at  # as the per-event path: dups included

    # 1. Duplicates: stored before, or earlier in this run.
    by_channel: dict[int, list[str]] = {}
    for r in run:
        by_channel.setdefault(r.channel.id, []).extend(e.provider_message_id for e in r.messages)
    stored: set[tuple[int, str]] = set()
    for channel_id, ids in by_channel.items():
        for chunk in chunks(ids, CHUNK):
            found = await s.scalars(
                select(Message.provider_message_id).where(
                    Message.channel_id == channel_id, Message.provider_message_id.in_(chunk)
                )
            )
            stored.update((channel_id, p) for p in found if p is not None)
    msgs: list[_Msg] = []
    for r in run:
        for event in r.messages:
            key = (r.channel.id, event.provider_message_id)
            if key not in stored:
                stored.add(key)
                msgs.append(_Msg(r.channel, event))
    if not msgs:
        return latest

    # 2. Senders: identities (by address, else alias), contacts, new ones created.
    phones: dict[tuple[int, str], str | None] = {}
    for m in msgs:
        raw = m.event.sender.phone
        if raw:
            key = (m.channel.workspace_id, raw)
            if key not in phones:
                phones[key] = await phone_for(s, m.channel.workspace_id, raw)
            m.phone = phones[key]
    await _find_identities(tx, msgs)
    await _create_senders(tx, [m for m in msgs if m.identity is None])
    contact_ids = {m.identity.contact_id for m in msgs if m.identity is not None}
    contacts: dict[int, Contact] = {}
    for id_chunk in chunks(sorted(contact_ids), CHUNK):
        for contact in await s.scalars(select(Contact).where(Contact.id.in_(id_chunk))):
            contacts[contact.id] = contact
    for m in msgs:
        assert m.identity is not None
        if m.contact is None:
            m.contact = contacts[m.identity.contact_id]
        if not m.creates:
            update_known(tx, m.channel, m.event.sender, m.phone, m.identity, m.contact)

    # 3. Conversations: the open one per contact and inbox, or a new one.
    pairs = []
    for m in msgs:
        assert m.contact is not None
        pairs.append((m.channel, m.contact))
    announced: set[int] = set()
    for m, (conv, created) in zip(msgs, await open_conversations(tx, pairs), strict=True):
        m.conv = conv
        # Only the first message in a new conversation announces it as created.
        m.created = created and conv.id not in announced
        announced.add(conv.id)

    # 4. Reply and reaction targets stored before this run.
    targets: dict[tuple[int, str], int] = {}
    wanted: dict[int, set[str]] = {}
    for m in msgs:
        wanted_id = m.event.reply_to_provider_id or m.event.target_provider_id
        if wanted_id:
            wanted.setdefault(m.channel.id, set()).add(wanted_id)
    for target_channel, target_ids in wanted.items():
        for target_chunk in chunks(sorted(target_ids), CHUNK):
            for target_id, target_pmid in await s.execute(
                select(Message.id, Message.provider_message_id).where(
                    Message.channel_id == target_channel,
                    Message.provider_message_id.in_(target_chunk),
                )
            ):
                if target_pmid is not None:
                    targets[(target_channel, target_pmid)] = target_id

    # 5. The messages, in one multi-row insert (the unique index still rejects a duplicate a
    # concurrent worker stored first: that message is skipped, as on the per-event path).
    now = utcnow()
    values = [_message_values(m, now, targets) for m in msgs]
    inserted: dict[tuple[int, str], int] = {}
    # Core on the table, executemany: SQLAlchemy sends it as multi-row INSERTs with RETURNING
    # ("insertmanyvalues") from one cached compiled statement.
    table = Message.__table__
    for new_id, new_channel, new_pmid in await s.execute(
        tx.rt.db.insert(table)
        .on_conflict_do_nothing(index_elements=["channel_id", "provider_message_id"])
        .returning(table.c.id, table.c.channel_id, table.c.provider_message_id),
        values,
    ):
        inserted[(new_channel, new_pmid)] = new_id
    # A reply to a message earlier in this run: its id is known only now.
    for index, m in enumerate(msgs):
        target = _target_key(m)
        if target is None or values[index]["reply_to_id"] is not None or target not in inserted:
            continue
        earlier = any(_key(msgs[j]) == target for j in range(index))
        mine = inserted.get(_key(m))
        if earlier and mine is not None:
            values[index]["reply_to_id"] = inserted[target]
            await s.execute(
                update(Message).where(Message.id == mine).values(reply_to_id=inserted[target])
            )

    # 6. Attachments, and the service-window rows of the conversations written to.
    attachments: dict[int, list[Attachment]] = {}
    for m in msgs:
        stored_id = inserted.get(_key(m))
        if stored_id is None or not m.event.attachments:
            continue
        attachments[stored_id] = new_attachments(tx, m.channel, m.event, stored_id, now)
        s.add_all(attachments[stored_id])
    if attachments:
        await s.flush()
    windows: dict[tuple[int, int], ConversationChannel] = {}
    conv_ids = sorted({m.conv.id for m in msgs if m.conv is not None})
    for conv_chunk in chunks(conv_ids, CHUNK):
        for cc in await s.scalars(
            select(ConversationChannel).where(ConversationChannel.conversation_id.in_(conv_chunk))
        ):
            windows[(cc.conversation_id, cc.channel_id)] = cc

    new_windows: dict[tuple[int, int], datetime] = {}

    # 7. Each message applied in order, as `do_receive_message` does after its insert.
    for m, row in zip(msgs, values, strict=True):
        mid = inserted.get(_key(m))
        if mid is None:
            continue
        assert m.conv is not None and m.contact is not None
        conv, event, channel = m.conv, m.event, m.channel
        # What the API shows of it (`message_dict` reads attributes); no ORM object needed.
        message = SimpleNamespace(
            id=mid, sender_agent_id=None, error_code=None, error_reason=None, **row
        )
        conv.last_inbound_at = _later(conv.last_inbound_at, event.occurred_at)
        conv.unread_count += 1
        if conv.status == ConversationStatus.SNOOZED:
            conv.status = ConversationStatus.OPEN
            conv.snoozed_until = None
        window = windows.get((conv.id, channel.id))
        if window is not None:
            window.last_inbound_at = _later(window.last_inbound_at, event.occurred_at)
        else:
            opened = new_windows.setdefault((conv.id, channel.id), event.occurred_at)
            new_windows[(conv.id, channel.id)] = max(opened, event.occurred_at)
        conv.last_activity_at = _later(conv.last_activity_at, event.occurred_at) or now
        conv.last_message_preview = _preview(event)
        conv.last_channel_id = channel.id
        conv.updated_at = now
        kind = live_events.CONVERSATION_CREATED if m.created else live_events.CONVERSATION_UPDATED
        tx.emit(kind(conversation_dict(conv)), conv.workspace_id, conv.inbox_id)
        tx.emit(
            live_events.MESSAGE_CREATED(message_dict(cast(Message, message), attachments.get(mid))),
            conv.workspace_id,
            conv.inbox_id,
        )
        # Consent keywords and provider opt-outs take the per-event path (`do_after_inbound`);
        # what remains of it for an ordinary message: a sender phone that is no number.
        consent.flag_unparsed_phone(m.contact, event.sender.phone)
        await sla.on_customer_message(tx, conv)
        if conv.assignee_id is None:
            assignment.after_change(tx)
    if new_windows:
        await s.execute(
            tx.rt.db.insert(ConversationChannel.__table__),
            [
                {"conversation_id": conv_id, "channel_id": channel_id, "last_inbound_at": at}
                for (conv_id, channel_id), at in new_windows.items()
            ],
        )
    await s.flush()
    return latest


def _key(m: _Msg) -> tuple[int, str]:
    return (m.channel.id, m.event.provider_message_id)


def _target_key(m: _Msg) -> tuple[int, str] | None:
    target = m.event.reply_to_provider_id or m.event.target_provider_id
    return (m.channel.id, target) if target else None


def _message_values(m: _Msg, now: datetime, targets: dict[tuple[int, str], int]) -> dict[str, Any]:
    assert m.conv is not None
    target = _target_key(m)
    reply_to_id = targets.get(target) if target is not None else None
    return {
        "workspace_id": m.channel.workspace_id,
        "conversation_id": m.conv.id,
        "channel_id": m.channel.id,
        "direction": Direction.IN,
        "kind": m.event.kind,
        "body": m.event.text,
        "provider_message_id": m.event.provider_message_id,
        "status": MessageStatus.RECEIVED,
        "sent_at": m.event.occurred_at,
        "created_at": now,
        "updated_at": now,
        "reply_to_id": reply_to_id,
        "extra": dict(m.event.extra),
    }


async def _find_identities(tx: Tx, msgs: Sequence[_Msg]) -> None:
    """Set each message's identity: the one on its channel kind known by any of the sender's
    ids, as address (lowest id first) else as alias — `inbound._identity` for a set."""
    s = tx.session
    scopes: dict[tuple[int, str], set[str]] = {}
    for m in msgs:
        sender = m.event.sender
        scopes.setdefault((m.channel.workspace_id, m.channel.kind), set()).update(
            [sender.address, *sender.aliases]
        )
    by: dict[str, dict[tuple[int, str, str], ContactIdentity]] = {"address": {}, "alias": {}}
    for (workspace_id, kind), ids in scopes.items():
        for name, column in (
            ("address", ContactIdentity.address),
            ("alias", ContactIdentity.alias),
        ):
            for chunk in chunks(sorted(ids), CHUNK):
                for identity in await s.scalars(
                    select(ContactIdentity)
                    .where(
                        ContactIdentity.workspace_id == workspace_id,
                        ContactIdentity.channel_kind == kind,
                        column.in_(chunk),
                    )
                    .order_by(ContactIdentity.id)
                ):
                    value = getattr(identity, name)
                    by[name].setdefault((workspace_id, kind, value), identity)
    for m in msgs:
        sender = m.event.sender
        for name in ("address", "alias"):
            found = [
                by[name][k]
                for i in (sender.address, *sender.aliases)
                if (k := (m.channel.workspace_id, m.channel.kind, i)) in by[name]
            ]
            if found:
                m.identity = min(found, key=lambda identity: identity.id)
                break


async def _create_senders(tx: Tx, unknown: list[_Msg]) -> None:
    """Contacts and identities for senders not known before this run — `resolve_contact`'s
    second half for a set: a verified phone joins the contact that has it, else a new contact;
    the identity is inserted ON CONFLICT DO NOTHING and a concurrent worker's wins."""
    if not unknown:
        return
    s = tx.session
    first: dict[tuple[int, str, str], _Msg] = {}
    for m in unknown:
        first.setdefault((m.channel.workspace_id, m.channel.kind, m.event.sender.address), m)
    creators = list(first.values())
    by_phone: dict[tuple[int, str], Contact] = {}
    verified = {
        (m.channel.workspace_id, m.phone)
        for m in creators
        if m.phone is not None and m.event.sender.phone_verified
    }
    for workspace_id in {ws for ws, _phone in verified}:
        numbers = sorted(p for ws, p in verified if ws == workspace_id)
        for chunk in chunks(numbers, CHUNK):
            for contact in await s.scalars(
                select(Contact)
                .where(Contact.workspace_id == workspace_id, Contact.phone_e164.in_(chunk))
                .order_by(Contact.id)
            ):
                assert contact.phone_e164 is not None
                by_phone.setdefault((workspace_id, contact.phone_e164), contact)
    fresh: list[Contact] = []
    for m in creators:
        sender, ws = m.event.sender, m.channel.workspace_id
        ok = sender.phone_verified
        if m.phone is not None and ok and (ws, m.phone) in by_phone:
            m.contact = by_phone[(ws, m.phone)]
            continue
        m.contact = Contact(
            workspace_id=ws,
            name=sender.name,
            phone_e164=m.phone if ok else None,
            claimed_phone=None if ok else m.phone,
            attributes={},
        )
        fresh.append(m.contact)
        if m.phone is not None and ok:
            by_phone[(ws, m.phone)] = m.contact  # a second new sender with it joins it
    if fresh:
        s.add_all(fresh)
        await s.flush()
    now = utcnow()
    rows = []
    for m in creators:
        assert m.contact is not None
        sender = m.event.sender
        rows.append(
            {
                "workspace_id": m.channel.workspace_id,
                "contact_id": m.contact.id,
                "channel_kind": m.channel.kind,
                "address": sender.address,
                "alias": next((a for a in sender.aliases if a != sender.address), None),
                "display_name": sender.name,
                "created_at": now,
                "profile_due_at": None,
                "profile_channel_id": None,
                **profiles.due_values(tx, m.channel),
            }
        )
    # In key order: two workers inserting the same new senders wait on each other's index
    # entries in one order, never in a cycle (PostgreSQL).
    rows.sort(key=lambda r: (r["workspace_id"], r["channel_kind"], r["address"]))
    await s.execute(
        tx.rt.db.insert(ContactIdentity.__table__).on_conflict_do_nothing(
            index_elements=["workspace_id", "channel_kind", "address"]
        ),
        rows,
    )
    await _find_identities(tx, unknown)
    for m in creators:
        assert m.identity is not None and m.contact is not None
        m.creates = True
        if m.identity.contact_id != m.contact.id:
            m.contact = None  # another worker created the identity first: its contact wins
