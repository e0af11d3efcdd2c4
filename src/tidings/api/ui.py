"""Endpoints the agent UI needs beyond the public REST API: enriched conversation rows (contact
name, channel, service-window countdown), the contact panel's context with reachable channels,
notes, presence, triage, retry and search. Same auth as the API (bearer token or session cookie
with the CSRF header); same error shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.access import (
    Principal,
    can_see_inbox,
    require_conversation,
    visible_channels,
    visible_contacts,
    visible_conversations,
)
from tidings.actions import gate, notifications
from tidings.actions.contacts_merge import (
    check_merge_contacts,
    check_undo_merge,
    merge_suggestions,
)
from tidings.actions.conversations import UNSET, check_update_conversation, labels_of
from tidings.actions.notes import check_add_note
from tidings.actions.presence import check_announce_presence
from tidings.actions.templates import (
    body_text,
    check_send_template,
    parameter_count,
    usable_templates,
)
from tidings.actions.triage import (
    PRIORITIES,
    check_mark_read,
    check_record_system_event,
    check_retry_message,
    check_triage,
)
from tidings.api import schemas as sc
from tidings.api.admin import CannedOut, LabelOut
from tidings.api.avatars import picture_path
from tidings.api.channels_admin import ChannelKindOut
from tidings.api.deps import RT, Who
from tidings.api.queries import (
    conversations_where,
    identities_by_contact,
    inbox_ids_by_agent,
    keyset_page,
    labels_by_conversation,
    page_cursor,
    workspace_rows,
)
from tidings.api.reply_options import ReplyOptionOut, WindowOut
from tidings.channels.registry import kind_capabilities
from tidings.domain.enums import ConversationStatus
from tidings.domain.errors import InvalidInput
from tidings.policy import service_window
from tidings.runtime import Runtime
from tidings.search import contact_match, search_messages
from tidings.serialize import contact_dict, conversation_dict, display_name, message_dict
from tidings.storage.models import (
    Agent,
    CannedReply,
    Channel,
    Consent,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationChannel,
    Inbox,
    Label,
    Team,
)
from tidings.storage.types import utcnow

router = APIRouter(prefix="/api/v1/ui", tags=["ui"])
BULK_MAX = 10_000


class TriageIn(sc.Strict):
    status: str | None = None
    assignee_id: int | None = None
    team_id: int | None = None
    labels: list[str] | None = None
    priority: str | None = Field(default=None, description=" | ".join(PRIORITIES))
    snoozed_until: datetime | None = None


class BulkFilter(sc.Strict):
    # The inbox list's filters (GET /conversations below); a saved view adds sla and sort.
    view: str = "all"
    status: str | None = "open"
    inbox_id: int | None = None
    channel_id: int | None = None
    assignee_id: int | None = None
    label: str | None = None
    team_id: int | None = None


class BulkIn(sc.Strict):
    ids: list[int] | None = Field(default=None, max_length=BULK_MAX)
    matching: BulkFilter | None = Field(
        default=None, description="Act on every conversation the list filter matches"
    )
    status: str | None = None
    assignee_id: int | None = None
    team_id: int | None = None
    add_label: str | None = None
    remove_label: str | None = None


class TemplateSendIn(sc.Strict):
    template_id: int
    params: list[str] = Field(default_factory=list, max_length=20)


class NoteIn(sc.Strict):
    text: str = Field(min_length=1, max_length=10_000)


class PresenceIn(sc.Strict):
    state: str = Field(description="viewing | replying | left")
    typing: bool | None = Field(
        default=None,
        description="replying: whether the agent is typing now (the customer is shown it where "
        "the channel can); default true. The composer's heartbeat over an idle draft says false.",
    )


class ConversationRowOut(sc.ConversationOut):
    """A conversation as the list shows it: the public row plus contact and channel."""

    contact_name: str | None
    contact_display_name: str
    contact_picture_url: str | None
    channel_kind: str | None
    channel_name: str | None
    window: WindowOut | None = Field(description="The last channel's window for a reply")


class ConversationRowPage(BaseModel):
    data: list[ConversationRowOut]
    next_cursor: str | None
    unread_conversations: int


class BootMeOut(BaseModel):
    id: int
    name: str
    email: str
    role: str
    is_admin: bool


class ColleagueOut(BaseModel):
    id: int
    name: str
    role: str
    active: bool
    inbox_ids: list[int]


class NamedOut(BaseModel):
    id: int
    name: str


class BootChannelOut(BaseModel):
    id: int
    kind: str
    name: str
    inbox_id: int
    active: bool
    label: str
    text_max_length: int | None
    service_window_hours: int | None
    supports_templates: bool


class BootstrapOut(BaseModel):
    me: BootMeOut
    agents: list[ColleagueOut]
    inboxes: list[NamedOut]
    channels: list[BootChannelOut]
    labels: list[LabelOut]
    canned_replies: list[CannedOut]
    teams: list[NamedOut]
    kinds: list[ChannelKindOut]


class ConsentOut(BaseModel):
    channel_kind: str
    purpose: str
    status: str
    source: str
    changed_at: str | None


class PreviousConversationOut(BaseModel):
    id: int
    status: str
    last_activity_at: str | None
    last_message_preview: str | None


class MergeSuggestionOut(sc.ContactOut):
    reason: str = Field(description="same phone number | claimed the same phone number | …")


class ContextOut(BaseModel):
    conversation: sc.ConversationOut
    contact: sc.ContactOut
    consents: list[ConsentOut]
    previous_conversations: list[PreviousConversationOut]
    routes: list[ReplyOptionOut] = Field(description="GET /api/v1/conversations/{id}/channels")
    merge_suggestions: list[MergeSuggestionOut]


class MergeOut(BaseModel):
    merge_id: int = Field(description="Undo with POST /api/v1/ui/contact_merges/{merge_id}/undo")
    kept: int
    merged: int
    identities: list[int]
    conversations: list[int]
    consents: list[int]
    filled: dict[str, str] = Field(description="Fields the kept contact took from the other")


class UndoMergeOut(BaseModel):
    merge_id: int
    undone: bool
    kept: int
    restored: int


class UsableTemplateOut(BaseModel):
    id: int
    channel_id: int
    name: str
    language: str
    category: str
    body: str
    parameters: int = Field(description="How many {{n}} values it needs")


class ReadOut(BaseModel):
    id: int
    unread_count: int


class PresenceOut(BaseModel):
    conversation_id: int
    agent_id: int
    agent_name: str
    state: str
    at: str
    ttl: int = Field(description="Seconds the state holds unless said again")


class ContactHitOut(sc.ContactOut):
    conversation_id: int | None = Field(description="Their latest conversation I may see")


class MessageHitOut(sc.MessageOut):
    contact_name: str | None
    contact_display_name: str


class SearchOut(BaseModel):
    contacts: list[ContactHitOut]
    messages: list[MessageHitOut]


async def contact_names(
    s: AsyncSession, contact_ids: set[int]
) -> dict[int, tuple[str | None, str, str | None]]:
    """(name, display name, picture address) of each contact: `serialize.display_name`'s rule,
    with the identities' provider names read only for contacts that have neither name nor
    phone; a same-origin picture address where the channel gave the customer one
    (api/avatars.py)."""
    if not contact_ids:
        return {}
    rows = (
        await s.execute(
            select(Contact.id, Contact.name, Contact.phone_e164, Contact.attributes).where(
                Contact.id.in_(contact_ids)
            )
        )
    ).all()
    bare = [cid for cid, name, phone, _ in rows if not name and not phone]
    handles: dict[int, str] = {}
    if bare:
        for cid, handle in await s.execute(
            select(ContactIdentity.contact_id, ContactIdentity.display_name)
            .where(ContactIdentity.contact_id.in_(bare), ContactIdentity.display_name.is_not(None))
            .order_by(ContactIdentity.id)
        ):
            if handle:
                handles.setdefault(cid, handle)
    return {
        cid: (name, display_name(cid, name, phone, handles.get(cid)), picture_path(cid, attrs))
        for cid, name, phone, attrs in rows
    }


async def enrich(rt: Runtime, s: AsyncSession, convs: list[Conversation]) -> list[dict[str, Any]]:
    """Conversation rows plus what the list shows: contact name, labels, last channel kind and
    its service window (from conversation_channel.last_inbound_at) as it stands for an agent's
    reply, so with the Human Agent extension where the channel has it."""
    if not convs:
        return []
    ids = [c.id for c in convs]
    names = await contact_names(s, {c.contact_id for c in convs})
    labels = await labels_by_conversation(s, ids)
    windows: dict[tuple[int, int], datetime | None] = {}
    for row in await s.scalars(
        select(ConversationChannel).where(ConversationChannel.conversation_id.in_(ids))
    ):
        windows[(row.conversation_id, row.channel_id)] = row.last_inbound_at
    now = utcnow()
    out = []
    for c in convs:
        item = conversation_dict(c, labels.get(c.id))
        info = await rt.channels.get(c.last_channel_id) if c.last_channel_id else None
        item["contact_name"], item["contact_display_name"], item["contact_picture_url"] = names.get(
            c.contact_id, (None, display_name(c.contact_id, None, None), None)
        )
        item["channel_kind"] = info.kind if info else None
        item["channel_name"] = info.name if info else None
        item["window"] = None
        if info is not None:
            inbound = windows.get((c.id, info.id))
            human = gate.has_human_agent(info)
            window = service_window(info.adapter.capabilities, inbound, now, human_agent=human)
            item["window"] = gate.window_dict(info, window)
        out.append(item)
    return out


# --- bootstrap ----------------------------------------------------------------------------------


@router.get("/bootstrap", response_model=BootstrapOut)
async def bootstrap(who: Who, rt: RT) -> dict[str, Any]:
    """Everything the inbox needs once: me, colleagues, inboxes, channels, labels, canned
    replies."""
    async with rt.db.read() as s:
        me = await s.get_one(Agent, who.agent_id)
        ws = who.workspace_id
        agents: list[Agent] = await workspace_rows(s, Agent, ws, Agent.name)
        inboxes: list[Inbox] = await workspace_rows(s, Inbox, ws, Inbox.id)
        channels: list[Channel] = await workspace_rows(s, Channel, ws, Channel.id)
        labels = await workspace_rows(s, Label, ws, Label.name)
        canned = await workspace_rows(s, CannedReply, ws, CannedReply.short_code)
        teams = await workspace_rows(s, Team, ws, Team.name)
        member_of = await inbox_ids_by_agent(s, ws)
    visible = [i for i in inboxes if can_see_inbox(who, i.workspace_id, i.id)]
    chans = []
    for c in visible_channels(who, channels):
        info = await rt.channels.get(c.id)
        caps = info.adapter.capabilities if info else None
        chans.append(
            sc.answer(
                BootChannelOut,
                c,
                label=info.adapter.label if info else c.kind,
                text_max_length=caps.text_max_length if caps else None,
                service_window_hours=caps.service_window_hours if caps else None,
                supports_templates=caps.supports_templates if caps else False,
            )
        )
    return {
        "me": sc.answer(BootMeOut, me, is_admin=who.is_admin),
        "agents": [sc.answer(ColleagueOut, a, inbox_ids=member_of.get(a.id, [])) for a in agents],
        "inboxes": [sc.answer(NamedOut, i) for i in visible],
        "channels": chans,
        "labels": [sc.answer(LabelOut, lb) for lb in labels],
        "canned_replies": [sc.answer(CannedOut, r) for r in canned],
        "teams": [sc.answer(NamedOut, t) for t in teams],
        "kinds": kind_capabilities(),
    }


# --- the list -----------------------------------------------------------------------------------


def filtered(
    who: Principal,
    view: str = "all",
    status: str | None = "open",
    inbox_id: int | None = None,
    channel_id: int | None = None,
    assignee_id: int | None = None,
    label: str | None = None,
    sla: str | None = None,
    team_id: int | None = None,
) -> Select[Conversation]:
    """The list's filters as a query (the public list's, plus views, team and `status=any`);
    bulk actions reuse it to act on every match."""
    if status and status != "any" and status not in ConversationStatus._value2member_map_:
        raise InvalidInput(f"status: any or one of {', '.join(ConversationStatus)}")
    q = conversations_where(
        who,
        status=ConversationStatus(status) if status and status != "any" else None,
        inbox_id=inbox_id,
        channel_id=channel_id,
        label=label or None,
        sla=sla or None,
        team_id=team_id,
    )
    if view == "mine":
        q = q.where(Conversation.assignee_id == who.agent_id)
    elif view == "unassigned":
        q = q.where(Conversation.assignee_id.is_(None))
    elif view == "mentions":
        q = q.where(notifications.mentioned(who.agent_id))
    elif view == "participating":
        q = q.where(notifications.participating(who.agent_id))
    elif view != "all":
        raise InvalidInput("view: mine, unassigned, mentions, participating or all")
    if assignee_id is not None:
        q = q.where(Conversation.assignee_id == assignee_id)
    return q


@router.get("/conversations", response_model=ConversationRowPage)
async def list_conversations(
    who: Who,
    rt: RT,
    view: Annotated[
        str, Query(description="mine | unassigned | mentions | participating | all")
    ] = "all",
    status: str | None = "open",
    inbox_id: int | None = None,
    channel_id: int | None = None,
    assignee_id: int | None = None,
    label: str | None = None,
    sort: Annotated[str, Query(description="activity (newest first) | waiting")] = "activity",
    sla: Annotated[str | None, Query(description="running | breached")] = None,
    team_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 30,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The inbox list, keyset-paged on (last_activity_at, id). `waiting` puts those waiting
    longest first. `status=any` lists every status."""
    q = filtered(
        who, view, status, inbox_id, channel_id, assignee_id, label, sla=sla, team_id=team_id
    )
    if sort not in ("activity", "waiting"):
        raise InvalidInput("sort: activity or waiting")
    async with rt.db.read() as s:
        rows = list((await s.scalars(keyset_page(q, cursor, limit, sort == "activity"))).all())
        data = await enrich(rt, s, rows[:limit])
        unread = await s.scalar(
            select(func.count())
            .select_from(Conversation)
            .where(visible_conversations(who), Conversation.unread_count > 0)
        )
    return {
        "data": data,
        "next_cursor": page_cursor(rows, limit),
        "unread_conversations": unread or 0,
    }


@router.get("/conversations/{conversation_id}", response_model=ConversationRowOut)
async def get_conversation(conversation_id: int, who: Who, rt: RT) -> dict[str, Any]:
    async with rt.db.read() as s:
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        return (await enrich(rt, s, [conv]))[0]


# --- the contact panel and the channel picker ---------------------------------------------------


@router.get("/conversations/{conversation_id}/context", response_model=ContextOut)
async def conversation_context(conversation_id: int, who: Who, rt: RT) -> dict[str, Any]:
    """The contact panel: identities, consent per channel, previous conversations (only those
    the agent may see), and the composer's channel picker."""
    async with rt.db.read() as s:
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        contact = await s.get_one(Contact, conv.contact_id)
        consents = (
            await s.scalars(
                select(Consent).where(Consent.contact_id == contact.id).order_by(Consent.id)
            )
        ).all()
        previous = (
            await s.scalars(
                select(Conversation)
                .where(
                    visible_conversations(who),
                    Conversation.contact_id == contact.id,
                    Conversation.id != conv.id,
                )
                .order_by(Conversation.last_activity_at.desc())
                .limit(20)
            )
        ).all()
        # The reply options `GET /api/v1/conversations/{id}/channels` serves (actions/gate.py).
        routes = await gate.reply_options(rt, s, conv)
        labels = await labels_of(s, conv.id)
        duplicates = await merge_suggestions(s, who, contact)
        idents = await identities_by_contact(s, [contact.id, *(d.id for d in duplicates)])
    return {
        "conversation": conversation_dict(conv, labels),
        "contact": contact_dict(contact, idents.get(contact.id, [])),
        "consents": [sc.answer(ConsentOut, c) for c in consents],
        "previous_conversations": [sc.answer(PreviousConversationOut, p) for p in previous],
        "routes": routes,
        "merge_suggestions": [
            {
                **contact_dict(d, idents.get(d.id)),
                "reason": _merge_reason(contact, d),
            }
            for d in duplicates
        ],
    }


def _merge_reason(contact: Contact, other: Contact) -> str:
    if other.phone_e164 and other.phone_e164 == contact.phone_e164:
        return "same phone number"
    mine = {contact.phone_e164, contact.claimed_phone} - {None}
    if mine & {other.phone_e164, other.claimed_phone}:
        # Someone typed the number (API channel): not proof, an agent decides.
        return "claimed the same phone number"
    return "same email"


class MergeIn(sc.Strict):
    merge_id: int = Field(description="The duplicate contact, folded into the one in the path")


@router.post("/contacts/{contact_id}/merge", response_model=MergeOut)
async def merge_contacts(contact_id: int, body: MergeIn, who: Who, rt: RT) -> dict[str, Any]:
    """Fold a duplicate into this contact: identities, conversations and consents move over.
    The answer's `merge_id` undoes it."""
    return await check_merge_contacts(rt, who, contact_id, body.merge_id)


@router.post("/contact_merges/{merge_id}/undo", response_model=UndoMergeOut)
async def undo_merge(merge_id: int, who: Who, rt: RT) -> dict[str, Any]:
    return await check_undo_merge(rt, who, merge_id)


# --- changes ------------------------------------------------------------------------------------


_Named = TypeVar("_Named", Agent, Team)


async def _name(rt: Runtime, model: type[_Named], row_id: int | None, none: str) -> str:
    """An agent's or team's name for a system line ("agent 7" once it is gone)."""
    if row_id is None:
        return none
    async with rt.db.read() as s:
        row = await s.get(model, row_id)
    return row.name if row else f"{model.__tablename__} {row_id}"


@router.patch("/conversations/{conversation_id}", response_model=ConversationRowOut)
async def triage(conversation_id: int, body: TriageIn, who: Who, rt: RT) -> dict[str, Any]:
    """Status, assignee, labels (the core action), priority and snooze-until; each change also
    leaves a system event in the thread."""
    async with rt.db.read() as s:
        before = require_conversation(who, await s.get(Conversation, conversation_id))
        old_labels = set(await labels_of(s, conversation_id))
        old_status, old_priority, old_team = before.status, before.priority, before.team_id
    fields = body.model_fields_set
    if fields & {"status", "assignee_id", "labels", "team_id"}:
        status = body.status if body.snoozed_until is None else None
        await check_update_conversation(
            rt,
            who,
            conversation_id,
            status=status,
            assignee_id=body.assignee_id if "assignee_id" in fields else UNSET,
            team_id=body.team_id if "team_id" in fields else UNSET,
            labels=body.labels,
        )
    if body.priority is not None or body.snoozed_until is not None:
        await check_triage(
            rt, who, conversation_id, priority=body.priority, snoozed_until=body.snoozed_until
        )
    me = await _name(rt, Agent, who.agent_id, "nobody")
    events: list[tuple[str, dict[str, object]]] = []
    # An assignment's line is written by check_update_conversation itself (every path).
    if "team_id" in fields and body.team_id != old_team:
        team = await _name(rt, Team, body.team_id, "none")
        text = f"{me} cleared the team" if body.team_id is None else f"{me} assigned team {team}"
        events.append((text, {"event": "team_assigned", "team_id": body.team_id}))
    if body.snoozed_until is not None:
        events.append(
            (
                f"{me} snoozed this until {body.snoozed_until.isoformat(timespec='minutes')}",
                {"event": "snoozed"},
            )
        )
    elif body.status is not None and body.status != old_status:
        verb = {"resolved": "resolved", "open": "reopened", "pending": "marked pending"}
        text = f"{me} {verb.get(body.status, 'set status ' + body.status)} this"
        events.append((text, {"event": "status", "status": body.status}))
    if body.priority is not None and body.priority != old_priority:
        events.append(
            (f"{me} set priority {body.priority}", {"event": "priority", "priority": body.priority})
        )
    if body.labels is not None:
        new = {n.strip() for n in body.labels if n.strip()}
        for name in sorted(new - old_labels):
            events.append((f"{me} added label {name}", {"event": "label_added", "label": name}))
        for name in sorted(old_labels - new):
            events.append((f"{me} removed label {name}", {"event": "label_removed", "label": name}))
    for text, details in events:
        await check_record_system_event(rt, who, conversation_id, text, details)
    return await get_conversation(conversation_id, who, rt)


@router.post("/conversations/bulk", response_model=sc.Count)
async def bulk(body: BulkIn, who: Who, rt: RT) -> dict[str, Any]:
    """One change over a selection: listed `ids`, or every conversation `matching` the list's
    filters (not only the loaded page). Each conversation changes through the same action as a
    single edit, so access checks and live events are the same."""
    if (body.ids is None) == (body.matching is None):
        raise InvalidInput("give either ids or matching")
    fields = {"status", "assignee_id", "team_id", "add_label", "remove_label"}
    wanted = body.model_fields_set & fields
    if not wanted:
        raise InvalidInput(
            "nothing to change: status, assignee_id, team_id, add_label or remove_label"
        )
    if body.matching is not None:
        q = filtered(who, **body.matching.model_dump())
        async with rt.db.read() as s:
            ids = list(
                (await s.scalars(q.with_only_columns(Conversation.id).limit(BULK_MAX))).all()
            )
    else:
        ids = sorted(set(body.ids or []))
    changed = 0
    for conversation_id in ids:
        labels: list[str] | None = None
        if body.add_label or body.remove_label:
            async with rt.db.read() as s:
                current = set(await labels_of(s, conversation_id))
            if body.add_label:
                current.add(body.add_label.strip())
            if body.remove_label:
                current.discard(body.remove_label.strip())
            labels = sorted(current)
        await check_update_conversation(
            rt,
            who,
            conversation_id,
            status=body.status,
            assignee_id=body.assignee_id if "assignee_id" in body.model_fields_set else UNSET,
            team_id=body.team_id if "team_id" in body.model_fields_set else UNSET,
            labels=labels,
        )
        changed += 1
    return {"count": changed}


@router.get("/conversations/{conversation_id}/templates", response_model=list[UsableTemplateOut])
async def conversation_templates(conversation_id: int, who: Who, rt: RT) -> list[dict[str, Any]]:
    """Approved templates that can go into this conversation, with their body text and how
    many `{{n}}` parameters each needs: the composer's template picker."""
    async with rt.db.read() as s:
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        rows = await usable_templates(rt, s, conv)
    return [
        sc.answer(UsableTemplateOut, t, body=body_text(t), parameters=parameter_count(t))
        for t in rows
    ]


@router.post(
    "/conversations/{conversation_id}/templates", status_code=201, response_model=sc.MessageOut
)
async def send_template(
    conversation_id: int, body: TemplateSendIn, who: Who, rt: RT
) -> dict[str, Any]:
    """Send an approved template (allowed when the service window is closed)."""
    message = await check_send_template(rt, who, conversation_id, body.template_id, body.params)
    return message_dict(message)


@router.post(
    "/conversations/{conversation_id}/notes", status_code=201, response_model=sc.MessageOut
)
async def add_note(conversation_id: int, body: NoteIn, who: Who, rt: RT) -> dict[str, Any]:
    """A private note: never sent to the customer. `@name` mentions colleagues."""
    return message_dict(await check_add_note(rt, who, conversation_id, body.text))


@router.post("/conversations/{conversation_id}/read", response_model=ReadOut)
async def mark_read(conversation_id: int, who: Who, rt: RT) -> dict[str, Any]:
    conv = await check_mark_read(rt, who, conversation_id)
    return sc.answer(ReadOut, conv)


@router.post("/conversations/{conversation_id}/presence", response_model=PresenceOut)
async def presence(conversation_id: int, body: PresenceIn, who: Who, rt: RT) -> dict[str, Any]:
    return await check_announce_presence(
        rt, who, conversation_id, body.state, typing=body.typing is not False
    )


@router.post("/messages/{message_id}/retry", response_model=sc.MessageOut)
async def retry(message_id: int, who: Who, rt: RT) -> dict[str, Any]:
    return message_dict(await check_retry_message(rt, who, message_id))


# --- search -------------------------------------------------------------------------------------


@router.get("/search", response_model=SearchOut)
async def search(
    who: Who,
    rt: RT,
    q: Annotated[str, Query(min_length=1, max_length=200)],
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> dict[str, Any]:
    """Contacts (name, email, phone, channel address) and message text, limited to what the
    agent may see: agents find contacts through conversations in their inboxes."""
    matching = contact_match(who.workspace_id, q)
    if matching is None:
        raise InvalidInput("q: give some text to search for")
    contacts_q = select(Contact).where(visible_contacts(who), Contact.id.in_(matching))
    async with rt.db.read() as s:
        contacts = list(
            (await s.scalars(contacts_q.order_by(Contact.id.desc()).limit(limit))).all()
        )
        latest: dict[int, int] = {}
        if contacts:
            for contact_id, conv_id in await s.execute(
                select(Conversation.contact_id, func.max(Conversation.id))
                .where(
                    visible_conversations(who),
                    Conversation.contact_id.in_([c.id for c in contacts]),
                )
                .group_by(Conversation.contact_id)
            ):
                latest[contact_id] = conv_id
        # Message text through the full-text index (PostgreSQL GIN / SQLite FTS5).
        found = await search_messages(s, who, q, limit)
        owners: dict[int, int] = {}
        if found:
            for conv_id, contact_id in await s.execute(
                select(Conversation.id, Conversation.contact_id).where(
                    Conversation.id.in_({m.conversation_id for m in found})
                )
            ):
                owners[conv_id] = contact_id
        names = await contact_names(s, set(owners.values()))
        idents = await identities_by_contact(s, [c.id for c in contacts])
    hits = [
        (m, names.get(owners.get(m.conversation_id, 0), (None, "Customer", None))) for m in found
    ]
    return {
        "contacts": [
            {**contact_dict(c, idents.get(c.id)), "conversation_id": latest.get(c.id)}
            for c in contacts
        ],
        "messages": [
            {**message_dict(m), "contact_name": name, "contact_display_name": shown}
            for m, (name, shown, _) in hits
        ],
    }
