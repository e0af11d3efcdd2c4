"""Contacts: the directory with filters, editing, CSV import/export, and starting a
conversation with a contact. Who sees which contact is `access.visible_contacts`; every change
goes through `actions/contacts_edit.py`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import exists, func, select

from tidings import csvio
from tidings.access import (
    Principal,
    require_contact,
    visible_channels,
    visible_contacts,
    visible_conversations,
)
from tidings.actions import contacts_edit
from tidings.api.deps import RT, Who, uploaded
from tidings.api.queries import identities_by_contact
from tidings.api.schemas import ContactOut, Strict, answer
from tidings.channels import addressing, registry
from tidings.domain.enums import ConsentStatus
from tidings.domain.errors import InvalidInput
from tidings.runtime import Runtime
from tidings.serialize import contact_dict, ts
from tidings.storage.models import (
    Channel,
    Consent,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationLabel,
    Label,
)

router = APIRouter(prefix="/api/v1", tags=["contacts"])

Consented = Literal["opted_in", "opted_out", "unknown"]
MAX_IMPORT_BYTES = 2_000_000
EXPORT_LIMIT = 50_000


class ContactPatch(Strict):
    name: str | None = Field(default=None, max_length=300)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40, description="E.164 or national")
    attributes: dict[str, str | int | float | bool | None] | None = None
    notes: str | None = Field(default=None, max_length=10_000)


class ContactCreate(ContactPatch):
    pass


class ContactRow(ContactOut):
    notes: str | None = None
    labels: list[str] = Field(default_factory=list)
    consent: str | None = Field(default=None, description="opted_in | opted_out | null")
    last_activity_at: str | None = None


class ContactList(BaseModel):
    data: list[ContactRow]
    total: int
    offset: int
    limit: int


class ImportError_(BaseModel):
    line: int
    message: str


class ImportOut(BaseModel):
    created: int
    updated: int
    errors: list[ImportError_]


class StartIn(Strict):
    channel_id: int


class StartOut(BaseModel):
    conversation_id: int
    inbox_id: int
    created: bool


class ReachOut(BaseModel):
    channel_id: int
    kind: str
    name: str
    label: str
    reachable: bool
    reason: str | None


def contacts_where(
    who: Principal,
    q: str | None,
    label: str | None,
    channel: str | None,
    consent: Consented | None,
) -> Any:
    """The contacts `who` may see that match the directory's filters (None: any); `q` as
    `search.contact_match` reads it. The public `GET /contacts` is this with `q` alone."""
    from tidings.search import contact_match

    stmt = select(Contact).where(visible_contacts(who))
    if q:
        matching = contact_match(who.workspace_id, q)
        if matching is not None:
            stmt = stmt.where(Contact.id.in_(matching))
    if label:
        stmt = stmt.where(
            exists().where(
                Conversation.contact_id == Contact.id,
                visible_conversations(who),
                ConversationLabel.conversation_id == Conversation.id,
                ConversationLabel.label_id == Label.id,
                Label.name == label,
                Label.workspace_id == who.workspace_id,
            )
        )
    if channel:
        if channel not in registry.kinds():
            raise InvalidInput(f"channel: one of {', '.join(registry.kinds())}")
        stmt = stmt.where(
            exists().where(
                ContactIdentity.contact_id == Contact.id, ContactIdentity.channel_kind == channel
            )
        )
    if consent:
        opted_out = exists().where(
            Consent.contact_id == Contact.id, Consent.status == ConsentStatus.OPTED_OUT
        )
        opted_in = exists().where(
            Consent.contact_id == Contact.id, Consent.status == ConsentStatus.OPTED_IN
        )
        if consent == "opted_out":
            stmt = stmt.where(opted_out)
        elif consent == "opted_in":
            stmt = stmt.where(opted_in, ~opted_out)
        else:
            stmt = stmt.where(~opted_in, ~opted_out)
    return stmt


async def _rows(s: Any, who: Principal, contacts: list[Contact]) -> list[dict[str, Any]]:
    ids = [c.id for c in contacts]
    labels: dict[int, set[str]] = {}
    consent: dict[int, str] = {}
    last: dict[int, Any] = {}
    idents = await identities_by_contact(s, ids)
    if ids:
        for contact_id, name in await s.execute(
            select(Conversation.contact_id, Label.name)
            .join(ConversationLabel, ConversationLabel.conversation_id == Conversation.id)
            .join(Label, Label.id == ConversationLabel.label_id)
            .where(Conversation.contact_id.in_(ids), visible_conversations(who))
        ):
            labels.setdefault(contact_id, set()).add(name)
        for contact_id, status in await s.execute(
            select(Consent.contact_id, Consent.status).where(Consent.contact_id.in_(ids))
        ):
            if consent.get(contact_id) != ConsentStatus.OPTED_OUT:
                consent[contact_id] = status
        for contact_id, at in await s.execute(
            select(Conversation.contact_id, Conversation.last_activity_at).where(
                Conversation.contact_id.in_(ids), visible_conversations(who)
            )
        ):
            if contact_id not in last or at > last[contact_id]:
                last[contact_id] = at
    return [
        {
            **contact_dict(c, idents.get(c.id)),
            "notes": c.notes,
            "labels": sorted(labels.get(c.id, ())),
            "consent": consent.get(c.id),
            "last_activity_at": ts(last.get(c.id)),
        }
        for c in contacts
    ]


Filter = Annotated[str | None, Query(max_length=200)]


@router.get("/contacts/directory", response_model=ContactList)
async def directory(
    who: Who,
    rt: RT,
    q: Annotated[
        str | None, Query(max_length=200, description="name, email, phone, address")
    ] = None,
    label: Filter = None,
    channel: Annotated[str | None, Query(max_length=32, description="a channel kind")] = None,
    consent: Annotated[Consented | None, Query(description="marketing consent")] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The Contacts page: contacts `who` may see, newest first, with their labels (from their
    conversations), consent and last activity."""
    stmt = contacts_where(who, q, label, channel, consent)
    async with rt.db.read() as s:
        total = await s.scalar(select(func.count()).select_from(stmt.subquery()))
        rows = list(
            (await s.scalars(stmt.order_by(Contact.id.desc()).offset(offset).limit(limit))).all()
        )
        data = await _rows(s, who, rows)
    return {"data": data, "total": total or 0, "offset": offset, "limit": limit}


@router.get("/contacts.csv", response_class=Response)
async def export_csv(
    who: Who,
    rt: RT,
    q: Filter = None,
    label: Filter = None,
    channel: Annotated[str | None, Query(max_length=32)] = None,
    consent: Annotated[Consented | None, Query()] = None,
) -> Response:
    """The filtered contacts as CSV (id, name, email, phone, notes, then one column per
    attribute): the import reads the same columns back."""
    stmt = contacts_where(who, q, label, channel, consent)
    async with rt.db.read() as s:
        rows = list((await s.scalars(stmt.order_by(Contact.id).limit(EXPORT_LIMIT))).all())
    attr_names = sorted({k for c in rows for k in (c.attributes or {})})
    return csvio.download(
        "contacts",
        [*contacts_edit.OWN_COLUMNS, *attr_names],
        [
            [
                c.id,
                c.name,
                c.email,
                c.phone_e164,
                c.notes,
                *map((c.attributes or {}).get, attr_names),
            ]
            for c in rows
        ],
    )


@router.post("/contacts/import", response_model=ImportOut)
async def import_csv(request: Request, who: Who, rt: RT) -> dict[str, Any]:
    """Upload a CSV (the body, `text/csv`, or a multipart `file`): rows matching a contact's
    phone or email update it, others create contacts; bad rows come back with their line."""
    raw = await _body(request)
    result = await contacts_edit.check_import_contacts(rt, who, raw)
    return {"created": result.created, "updated": result.updated, "errors": result.errors}


async def _body(request: Request) -> bytes:
    if int(request.headers.get("content-length") or 0) > MAX_IMPORT_BYTES:
        raise InvalidInput(f"file: at most {MAX_IMPORT_BYTES // 1_000_000} MB")
    raw = await uploaded(request, "file: attach a CSV file")
    if len(raw) > MAX_IMPORT_BYTES:
        raise InvalidInput(f"file: at most {MAX_IMPORT_BYTES // 1_000_000} MB")
    if not raw.strip():
        raise InvalidInput("file: the file is empty")
    return raw


@router.post("/contacts", status_code=201, response_model=ContactRow)
async def create_contact(body: ContactCreate, who: Who, rt: RT) -> dict[str, Any]:
    contact = await contacts_edit.check_create_contact(rt, who, body.model_dump())
    return await _one(rt, who, contact.id)


@router.patch("/contacts/{contact_id}", response_model=ContactRow)
async def update_contact(contact_id: int, body: ContactPatch, who: Who, rt: RT) -> dict[str, Any]:
    """Change the fields sent (null or "" clears name, email, phone, notes; `attributes`
    replaces the whole set)."""
    fields = {name: getattr(body, name) for name in body.model_fields_set}
    await contacts_edit.check_update_contact(rt, who, contact_id, fields)
    return await _one(rt, who, contact_id)


@router.get("/contacts/{contact_id}/details", response_model=ContactRow)
async def contact_details(contact_id: int, who: Who, rt: RT) -> dict[str, Any]:
    return await _one(rt, who, contact_id)


async def _one(rt: Runtime, who: Principal, contact_id: int) -> dict[str, Any]:
    async with rt.db.read() as s:
        contact = await require_contact(s, who, contact_id)
        return (await _rows(s, who, [contact]))[0]


@router.get("/contacts/{contact_id}/reach", response_model=list[ReachOut])
async def reach(contact_id: int, who: Who, rt: RT) -> list[dict[str, Any]]:
    """The channels `who` sees, each with whether a conversation with this contact can be
    started there (an address on it) and why not. What may then be sent — free text or a
    template — is the conversation's `GET …/channels`."""
    async with rt.db.read() as s:
        contact = await require_contact(s, who, contact_id)
        kinds = set(
            (
                await s.scalars(
                    select(ContactIdentity.channel_kind).where(
                        ContactIdentity.contact_id == contact.id
                    )
                )
            ).all()
        )
        channels = visible_channels(
            who,
            (
                await s.scalars(
                    select(Channel)
                    .where(Channel.workspace_id == who.workspace_id, Channel.active.is_(True))
                    .order_by(Channel.id)
                )
            ).all(),
        )
    out = []
    for c in channels:
        if c.kind not in registry.kinds():
            continue
        adapter = registry.get_adapter(c.kind)
        phoned = addressing.phone_addressed(adapter, c.kind)
        ok = c.kind in kinds or (phoned and contact.phone_e164 is not None)
        reason = None
        if not ok:
            reason = (
                "no phone number on this contact" if phoned else "the customer has not written here"
            )
        out.append(
            answer(ReachOut, c, channel_id=c.id, label=adapter.label, reachable=ok, reason=reason)
        )
    return out


@router.post("/contacts/{contact_id}/conversations", status_code=201, response_model=StartOut)
async def start_conversation(contact_id: int, body: StartIn, who: Who, rt: RT) -> dict[str, Any]:
    """Open (or find) the contact's conversation in the channel's inbox, to write first. Then
    send with `POST /conversations/{id}/messages` (text, where the window is open) or
    `POST /conversations/{id}/templates` (where it is closed)."""
    conv, created = await contacts_edit.check_start_conversation(
        rt, who, contact_id, body.channel_id
    )
    return {"conversation_id": conv.id, "inbox_id": conv.inbox_id, "created": created}
