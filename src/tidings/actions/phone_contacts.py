"""Contacts the business gives by phone number (a campaign's CSV, a contact's recorded number):
found or created by number, and linked to the phone-addressed channel kinds. The campaign
package decides who and which numbers; the rows are written here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, select, update

from tidings.actions.base import Tx
from tidings.storage.models import Contact, ContactIdentity, table_of
from tidings.storage.types import utcnow


async def do_contacts_by_phone(
    tx: Tx, workspace_id: int, names: Mapping[str, str | None]
) -> tuple[dict[str, int], int]:
    """The contact of each E.164 number in `names` (the oldest one with that number), creating
    those that do not exist yet with the name given; a name also names a known contact that has
    none yet (never renames). Returns ({number: contact id}, how many were created)."""
    s, now = tx.session, utcnow()
    known: dict[str, int] = {}
    for cid, phone in await s.execute(
        select(Contact.id, Contact.phone_e164)
        .where(Contact.workspace_id == workspace_id, Contact.phone_e164.in_(list(names)))
        .order_by(Contact.id)
    ):
        if phone is not None:
            known.setdefault(phone, cid)
    naming = {known[p]: name[:200] for p, name in names.items() if p in known and name}
    if naming:
        c = table_of(Contact)
        await s.execute(
            update(c)
            .where(c.c.id == bindparam("b_id"), c.c.name.is_(None))
            .values(name=bindparam("b_name"), updated_at=now),
            [{"b_id": cid, "b_name": name} for cid, name in naming.items()],
        )
    missing = [(p, name) for p, name in names.items() if p not in known]
    if missing:
        created = await s.execute(
            tx.rt.db.insert(Contact)
            .values(
                [
                    {
                        "workspace_id": workspace_id,
                        "name": name or None,
                        "phone_e164": p,
                        "attributes": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for p, name in missing
                ]
            )
            .returning(Contact.id, Contact.phone_e164)
        )
        for cid, phone in created:
            if phone is not None:
                known[phone] = cid
    return known, len(missing)


async def do_add_identities(tx: Tx, rows: Sequence[dict[str, Any]]) -> None:
    """Identities (workspace_id, contact_id, channel_kind, address, display_name) in one
    insert; an address another contact already holds stays theirs."""
    if rows:
        now = utcnow()
        await tx.session.execute(
            tx.rt.db.insert(ContactIdentity).on_conflict_do_nothing(
                index_elements=["workspace_id", "channel_kind", "address"]
            ),
            [{**row, "created_at": now} for row in rows],
        )
