"""Merging duplicate contacts (same E.164 number or same email), and undoing a merge.

A merge moves the duplicate's identities, conversations and consents onto the contact kept,
and marks the duplicate `attributes.merged_into`; it is not deleted. What moved is written to
the audit log, so `check_undo_merge` can move exactly that back.

Both sides of a merge must be visible to the agent (`access.visible_contacts`: owners and
admins, or an agent with a conversation of the contact in one of their inboxes); a contact the
agent cannot see answers exactly like one that does not exist.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, update

from tidings.access import (
    Principal,
    can_see_inbox,
    contact_inboxes,
    require_contact,
    visible_contacts,
)
from tidings.actions.base import Tx, audit, transaction
from tidings.actions.conversations import do_announce
from tidings.domain import live_events
from tidings.domain.errors import Conflict, InvalidInput, NotFound
from tidings.runtime import Runtime
from tidings.storage.models import (
    AuditLog,
    Consent,
    Contact,
    ContactIdentity,
    Conversation,
)
from tidings.storage.types import utcnow

MERGED_INTO = "merged_into"
# What a merge moves to the contact kept, under its key in the merge's audit details.
MOVED: tuple[tuple[Any, str], ...] = (
    (ContactIdentity, "identities"),
    (Conversation, "conversations"),
    (Consent, "consents"),
)


async def merge_suggestions(s: Any, who: Principal, contact: Contact) -> list[Contact]:
    """Other live contacts `who` can see with the same E.164 number or the same email.
    A number a sender only claimed (`claimed_phone`) counts here, and only here: an agent
    decides whether the claimant is that customer (docs/architecture.md, "Contact resolution")."""
    same = []
    for phone in {p for p in (contact.phone_e164, contact.claimed_phone) if p}:
        same.append(Contact.phone_e164 == phone)
        same.append(Contact.claimed_phone == phone)
    if contact.email:
        same.append(func.lower(Contact.email) == contact.email.lower())
    if not same:
        return []
    rows = (
        await s.scalars(
            select(Contact)
            .where(
                visible_contacts(who),
                Contact.id != contact.id,
                or_(*same),
            )
            .order_by(Contact.id)
            .limit(10)
        )
    ).all()
    return [c for c in rows if not (c.attributes or {}).get(MERGED_INTO)]


async def _announce_conversations(tx: Tx, ids: list[int]) -> None:
    for conv_id in ids:
        await do_announce(tx, await tx.session.get_one(Conversation, conv_id))


async def check_merge_contacts(
    rt: Runtime, who: Principal, keep_id: int, merge_id: int
) -> dict[str, Any]:
    """Fold contact `merge_id` into `keep_id`. Any agent may merge two contacts they can both
    see; a merge never exposes a conversation's messages."""
    if keep_id == merge_id:
        raise InvalidInput("merge_id: a contact cannot be merged into itself")
    async with transaction(rt) as tx:
        s = tx.session
        keep = await require_contact(s, who, keep_id)
        dup = await require_contact(s, who, merge_id)
        for c in (keep, dup):
            if (c.attributes or {}).get(MERGED_INTO):
                raise Conflict(f"contact {c.id} was already merged into another contact")
        identities = list(
            (
                await s.scalars(select(ContactIdentity).where(ContactIdentity.contact_id == dup.id))
            ).all()
        )
        conversations = list(
            (await s.scalars(select(Conversation).where(Conversation.contact_id == dup.id))).all()
        )
        taken = {
            (c.channel_kind, c.purpose)
            for c in await s.scalars(select(Consent).where(Consent.contact_id == keep.id))
        }
        consents = [
            c
            for c in await s.scalars(select(Consent).where(Consent.contact_id == dup.id))
            if (c.channel_kind, c.purpose) not in taken
        ]
        for identity in identities:
            identity.contact_id = keep.id
        for conv in conversations:
            conv.contact_id = keep.id
        for consent in consents:
            consent.contact_id = keep.id
        filled = {}
        for attr in ("name", "email", "phone_e164"):
            if getattr(keep, attr) is None and getattr(dup, attr) is not None:
                setattr(keep, attr, getattr(dup, attr))
                filled[attr] = getattr(dup, attr)
        dup.attributes = {**(dup.attributes or {}), MERGED_INTO: keep.id}
        keep.updated_at = dup.updated_at = utcnow()
        details: dict[str, Any] = {
            "kept": keep.id,
            "merged": dup.id,
            "identities": [i.id for i in identities],
            "conversations": [c.id for c in conversations],
            "consents": [c.id for c in consents],
            "filled": filled,
        }
        row = audit(tx, who, "contact.merge", "contact", keep.id, details)
        await s.flush()
        await _announce_conversations(tx, details["conversations"])
        tx.emit(
            live_events.CONTACT_MERGED({"merge_id": row.id, **details}),
            who.workspace_id,
            None,
            await contact_inboxes(s, [keep.id]),
        )
        return {"merge_id": row.id, **details}


async def check_undo_merge(rt: Runtime, who: Principal, merge_id: int) -> dict[str, Any]:
    async with transaction(rt) as tx:
        s = tx.session
        merged = await s.get(AuditLog, merge_id)
        if (
            merged is None
            or merged.workspace_id != who.workspace_id
            or merged.action != "contact.merge"
        ):
            raise NotFound("merge not found")
        d = dict(merged.details)
        try:
            keep = await require_contact(s, who, int(d["kept"]))
        except NotFound:
            raise NotFound("merge not found") from None
        dup = await s.get_one(Contact, int(d["merged"]))
        # The duplicate's conversations moved to the contact kept: it is visible through them.
        moved = [int(i) for i in d.get("conversations", [])]
        inboxes = await s.scalars(select(Conversation.inbox_id).where(Conversation.id.in_(moved)))
        if not who.is_admin and not any(
            can_see_inbox(who, who.workspace_id, inbox) for inbox in inboxes.all()
        ):
            raise NotFound("merge not found")
        if d.get("undone"):
            raise Conflict("this merge was already undone")
        # Only rows still on the kept contact go back (a later change may have moved one).
        for model, key in MOVED:
            back = [int(i) for i in d.get(key, [])]
            if back:
                await s.execute(
                    update(model)
                    .where(model.id.in_(back), model.contact_id == keep.id)
                    .values(contact_id=dup.id)
                )
        for attr, value in (d.get("filled") or {}).items():
            if getattr(keep, attr) == value:
                setattr(keep, attr, None)
        dup.attributes = {k: v for k, v in (dup.attributes or {}).items() if k != MERGED_INTO}
        keep.updated_at = dup.updated_at = utcnow()
        merged.details = {**d, "undone": True}
        audit(tx, who, "contact.merge_undo", "contact", dup.id, {"merge_id": merge_id})
        await s.flush()
        await _announce_conversations(tx, moved)
        tx.emit(
            live_events.CONTACT_MERGED({"merge_id": merge_id, "undone": True}),
            who.workspace_id,
            None,
            await contact_inboxes(s, [keep.id, dup.id]),
        )
        return {"merge_id": merge_id, "undone": True, "kept": keep.id, "restored": dup.id}
