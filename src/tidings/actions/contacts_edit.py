"""Staff editing contacts (the Contacts page): name, email, phone, attributes, notes; CSV
import; and starting a conversation with a contact on a chosen channel.

Phones are stored in E.164 (read in the workspace's region when written nationally), so a
number staff enter meets the WhatsApp and SMS identities of the same person. Starting a
conversation only opens (or finds) the conversation; what may be sent in it is decided where
every reply is decided (`actions/gate.py`, `POST …/messages`, `POST …/templates`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from tidings import csvio
from tidings.access import Principal, require_admin, require_channel
from tidings.access import require_contact as visible_contact
from tidings.actions.base import Tx, audit, transaction
from tidings.actions.inbound import open_conversation
from tidings.actions.profiles import do_announce_contact
from tidings.actions.workspace_settings import phone_for
from tidings.channels import addressing, registry
from tidings.domain import live_events
from tidings.domain.errors import Conflict, InvalidInput, NotFound
from tidings.runtime import Runtime
from tidings.serialize import conversation_dict
from tidings.storage.models import Contact, ContactIdentity, Conversation
from tidings.storage.types import utcnow

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-. ]{0,63}$")
MAX_ATTRIBUTES = 50
MAX_NOTES = 10_000
MAX_IMPORT_ROWS = 5_000
# Columns of the CSV import/export that are the contact's own fields; the rest are attributes.
OWN_COLUMNS = ("id", "name", "email", "phone", "notes")


def _email(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    if len(text) > 320 or not EMAIL.match(text):
        raise InvalidInput("email: not an email address (name@example.com)")
    return text


async def _phone(tx: Tx, workspace_id: int, value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    found = await phone_for(tx.session, workspace_id, value)
    if found is None:
        raise InvalidInput(
            "phone: not a valid phone number; write it with the country code (+49 151 …) "
            "or set the workspace's default region"
        )
    return found


def _attributes(value: dict[str, Any]) -> dict[str, str]:
    if len(value) > MAX_ATTRIBUTES:
        raise InvalidInput(f"attributes: at most {MAX_ATTRIBUTES}")
    out: dict[str, str] = {}
    for raw_name, raw in value.items():
        name = str(raw_name).strip()
        if not ATTRIBUTE_NAME.match(name):
            raise InvalidInput(
                f"attributes: {name!r} is not a name (letters, digits, _ - . and spaces, up to 64)"
            )
        text = "" if raw is None else str(raw)
        if len(text) > 1000:
            raise InvalidInput(f"attributes: the value of {name!r} is longer than 1000")
        out[name] = text
    return out


async def _unique(tx: Tx, who: Principal, contact_id: int | None, email: str | None) -> None:
    if email is None:
        return
    clash = await tx.session.scalar(
        select(Contact.id).where(
            Contact.workspace_id == who.workspace_id,
            Contact.email == email,
            Contact.id != (contact_id or 0),
        )
    )
    if clash is not None:
        raise Conflict(f"email: contact #{clash} already has this email; merge them instead")


async def check_update_contact(
    rt: Runtime, who: Principal, contact_id: int, fields: dict[str, Any]
) -> Contact:
    """Change the given fields of a contact `who` may see (agents: contacts they talk to).
    `fields` holds only what the caller sent; None or "" clears name, email, phone, notes."""
    async with transaction(rt) as tx:
        contact = await visible_contact(tx.session, who, contact_id)
        if "name" in fields:
            name = (fields["name"] or "").strip()
            if len(name) > 300:
                raise InvalidInput("name: at most 300 characters")
            contact.name = name or None
        if "email" in fields:
            email = _email(fields["email"])
            await _unique(tx, who, contact.id, email)
            contact.email = email
        if "phone" in fields:
            contact.phone_e164 = await _phone(tx, who.workspace_id, fields["phone"])
        if "attributes" in fields:
            contact.attributes = _attributes(fields["attributes"] or {})
        if "notes" in fields:
            notes = (fields["notes"] or "").strip()
            if len(notes) > MAX_NOTES:
                raise InvalidInput(f"notes: at most {MAX_NOTES} characters")
            contact.notes = notes or None
        contact.updated_at = utcnow()
        await tx.session.flush()
        audit(tx, who, "contact.update", "contact", contact.id, {"fields": sorted(fields)})
        await do_announce_contact(tx, contact.workspace_id, contact.id)
        return contact


async def check_create_contact(rt: Runtime, who: Principal, fields: dict[str, Any]) -> Contact:
    """A contact staff add by hand (owners and admins: agents see only the contacts they talk
    to, so a new one would vanish from their list)."""
    require_admin(who)
    async with transaction(rt) as tx:
        email = _email(fields.get("email"))
        await _unique(tx, who, None, email)
        name = (fields.get("name") or "").strip() or None
        phone = await _phone(tx, who.workspace_id, fields.get("phone"))
        if name is None and email is None and phone is None:
            raise InvalidInput("name: give a name, an email or a phone")
        contact = Contact(
            workspace_id=who.workspace_id,
            name=name,
            email=email,
            phone_e164=phone,
            attributes=_attributes(fields.get("attributes") or {}),
            notes=(fields.get("notes") or "").strip() or None,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        tx.session.add(contact)
        await tx.session.flush()
        audit(tx, who, "contact.create", "contact", contact.id, {})
        return contact


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


async def check_import_contacts(rt: Runtime, who: Principal, raw: bytes) -> ImportResult:
    """Import a CSV with a header row: `name`, `email`, `phone`, `notes` and any other
    column as an attribute. A row whose phone or email matches a contact updates it (blank
    cells change nothing); otherwise it creates one. Bad rows are reported with their line
    number and skipped; the good rows are imported in one transaction."""
    require_admin(who)
    columns, rows = csvio.read(raw, "file")
    if not {"name", "email", "phone"} & set(columns):
        raise InvalidInput("file: the header row needs a name, email or phone column")
    if len(rows) > MAX_IMPORT_ROWS:
        raise InvalidInput(f"file: at most {MAX_IMPORT_ROWS} rows per import")
    result = ImportResult()
    async with transaction(rt) as tx:
        s = tx.session
        for line, cells in rows:
            try:
                email = _email(cells.get("email"))
                phone = await _phone(tx, who.workspace_id, cells.get("phone"))
                attrs = _attributes(
                    {k: v for k, v in cells.items() if k not in OWN_COLUMNS and v and k}
                )
            except InvalidInput as exc:
                result.errors.append({"line": line, "message": exc.message})
                continue
            name = cells.get("name") or None
            if not (name or email or phone):
                result.errors.append({"line": line, "message": "row: no name, email or phone"})
                continue
            found = None
            if phone:
                found = await s.scalar(
                    select(Contact).where(
                        Contact.workspace_id == who.workspace_id, Contact.phone_e164 == phone
                    )
                )
            if found is None and email:
                found = await s.scalar(
                    select(Contact).where(
                        Contact.workspace_id == who.workspace_id, Contact.email == email
                    )
                )
            if found is None:
                s.add(
                    Contact(
                        workspace_id=who.workspace_id,
                        name=name,
                        email=email,
                        phone_e164=phone,
                        attributes=attrs,
                        notes=cells.get("notes") or None,
                        created_at=utcnow(),
                        updated_at=utcnow(),
                    )
                )
                result.created += 1
            else:
                found.name = name or found.name
                found.email = email or found.email
                found.phone_e164 = phone or found.phone_e164
                found.attributes = {**(found.attributes or {}), **attrs}
                found.notes = cells.get("notes") or found.notes
                found.updated_at = utcnow()
                result.updated += 1
            # One row at a time: a later row with the same phone finds this one.
            await s.flush()
        details = {"created": result.created, "updated": result.updated}
        audit(tx, who, "contact.import", "workspace", who.workspace_id, details)
    return result


async def check_start_conversation(
    rt: Runtime, who: Principal, contact_id: int, channel_id: int
) -> tuple[Conversation, bool]:
    """The contact's open conversation in the channel's inbox, or a new one, for staff who
    write first. The contact needs an address on the channel: an identity of its kind, or a
    phone for a phone-addressed kind (WhatsApp, SMS), which becomes the identity as a campaign
    makes it. Returns (conversation, created)."""
    async with transaction(rt) as tx:
        s = tx.session
        contact = await visible_contact(s, who, contact_id)
        channel = await require_channel(s, who, channel_id)
        if not channel.active:
            raise InvalidInput("channel_id: this channel is disabled")
        info = await rt.channels.get(channel.id)
        if info is None:
            raise NotFound("channel not found")
        has_identity = await s.scalar(
            select(ContactIdentity.id).where(
                ContactIdentity.contact_id == contact.id,
                ContactIdentity.channel_kind == channel.kind,
            )
        )
        if has_identity is None:
            adapter = registry.get_adapter(channel.kind)
            phoned = addressing.phone_addressed(adapter, channel.kind)
            if not (contact.phone_e164 and phoned):
                raise InvalidInput(
                    f"channel_id: {contact.name or 'this contact'} has no address on "
                    f"{channel.name}; they must write there first"
                    + (" or be given a phone number" if phoned else "")
                )
            address = addressing.phone_identity(channel.kind, contact.phone_e164)
            taken = await s.scalar(
                select(ContactIdentity.contact_id).where(
                    ContactIdentity.workspace_id == who.workspace_id,
                    ContactIdentity.channel_kind == channel.kind,
                    ContactIdentity.address == address,
                )
            )
            if taken is not None and taken != contact.id:
                raise Conflict(
                    f"channel_id: this number belongs to contact #{taken} on {channel.name}; "
                    "merge the contacts first"
                )
            s.add(
                ContactIdentity(
                    workspace_id=who.workspace_id,
                    contact_id=contact.id,
                    channel_kind=channel.kind,
                    address=address,
                    display_name=contact.name,
                    created_at=utcnow(),
                )
            )
            await s.flush()
        conv, created = await open_conversation(tx, info, contact, answering=False)
        if created:
            conv.last_channel_id = channel.id
            await s.flush()
            audit(
                tx, who, "conversation.start", "contact", contact.id, {"conversation_id": conv.id}
            )
            tx.emit_for(live_events.CONVERSATION_CREATED(conversation_dict(conv)), conv)
        return conv, created
