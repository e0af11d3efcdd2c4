"""REST API v1. Errors are `{"error": {"code": ..., "message": ...}}` with a 4xx status."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select

from tidings.access import (
    Principal,
    can_see_event,
    member_inbox_ids,
    require_admin,
    require_channel,
    require_contact,
    require_conversation,
    require_own,
    visible_channels,
)
from tidings.actions import admin
from tidings.actions import webhook_subscriptions as subs
from tidings.actions.conversations import UNSET, check_update_conversation, labels_of
from tidings.actions.media import attachments_of
from tidings.actions.outbound import check_send_reply
from tidings.actions.passwords import check_change_own_password
from tidings.api import schemas as sc
from tidings.api.auth import SESSION_COOKIE, authenticate, set_session_cookie
from tidings.api.contacts import contacts_where
from tidings.api.deps import RT, Who
from tidings.api.message_templates import send_rich
from tidings.api.queries import (
    conversations_where,
    grouped,
    identities_by_contact,
    keyset_page,
    labels_by_conversation,
    page_cursor,
    workspace_rows,
)
from tidings.delivery import outgoing_webhooks as outgoing
from tidings.domain.enums import ConversationStatus, InboundLane
from tidings.domain.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from tidings.ingest import worker as ingest
from tidings.ingest.lag import CUSTOMER_WARN_SECONDS
from tidings.realtime.bus import IDLE
from tidings.runtime import Runtime
from tidings.search import search_messages as run_search
from tidings.search import words
from tidings.serialize import channel_dict, contact_dict, conversation_dict, message_dict
from tidings.storage.models import (
    Attachment,
    Channel,
    Contact,
    Conversation,
    InboundEvent,
    Message,
    WebhookDelivery,
    WebhookSubscription,
)

router = APIRouter(prefix="/api/v1")


# --- channels -------------------------------------------------------------------------------


def _channel_out(rt: Runtime, c: Channel) -> dict[str, Any]:
    config = admin.public_config(c.kind, rt.box.decrypt_json(c.config_encrypted))
    return channel_dict(c, config, rt.settings.webhook_url(c.kind, c.id))


@router.post("/channels", status_code=201, response_model=sc.ChannelOut, tags=["channels"])
async def create_channel(body: sc.ChannelCreate, who: Who, rt: RT) -> dict[str, Any]:
    """Connect a provider account. The response carries the webhook URL to give the provider."""
    channel = await admin.create_channel(rt, who, body.kind, body.name, body.config, body.inbox_id)
    return _channel_out(rt, channel)


@router.get("/channels", response_model=list[sc.ChannelOut], tags=["channels"])
async def list_channels(who: Who, rt: RT) -> list[dict[str, Any]]:
    async with rt.db.read() as s:
        rows = await workspace_rows(s, Channel, who.workspace_id, Channel.id)
    return [_channel_out(rt, c) for c in visible_channels(who, rows)]


@router.get("/channels/{channel_id}", response_model=sc.ChannelOut, tags=["channels"])
async def get_channel(channel_id: int, who: Who, rt: RT) -> dict[str, Any]:
    async with rt.db.read() as s:
        c = await require_channel(s, who, channel_id)
    return _channel_out(rt, c)


# --- conversations --------------------------------------------------------------------------


@router.get("/conversations", response_model=sc.ConversationPage, tags=["conversations"])
async def list_conversations(
    who: Who,
    rt: RT,
    # The enum: an unknown status is a 422, not a value the typed column refuses (a 500).
    status: ConversationStatus | None = None,
    inbox_id: int | None = None,
    channel_id: int | None = None,
    assignee_id: Annotated[str | None, Query(description="agent id, 'me' or 'none'")] = None,
    label: str | None = None,
    sla: Annotated[str | None, Query(description="running | breached")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 25,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Newest activity first, keyset-paged: pass `next_cursor` back as `cursor`."""
    q = conversations_where(
        who, status=status, inbox_id=inbox_id, channel_id=channel_id, label=label, sla=sla
    )
    if assignee_id == "me":
        q = q.where(Conversation.assignee_id == who.agent_id)
    elif assignee_id == "none":
        q = q.where(Conversation.assignee_id.is_(None))
    elif assignee_id is not None and assignee_id.isdigit():
        q = q.where(Conversation.assignee_id == int(assignee_id))
    elif assignee_id is not None:
        raise InvalidInput("assignee_id: an agent id, 'me' or 'none'")
    async with rt.db.read() as s:
        rows = list((await s.scalars(keyset_page(q, cursor, limit))).all())
        labels = await labels_by_conversation(s, [c.id for c in rows[:limit]])
    return {
        "data": [conversation_dict(c, labels.get(c.id)) for c in rows[:limit]],
        "next_cursor": page_cursor(rows, limit),
    }


@router.get(
    "/conversations/{conversation_id}", response_model=sc.ConversationOut, tags=["conversations"]
)
async def get_conversation(conversation_id: int, who: Who, rt: RT) -> dict[str, Any]:
    async with rt.db.read() as s:
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        labels = await labels_of(s, conv.id)
    return conversation_dict(conv, labels)


@router.patch(
    "/conversations/{conversation_id}", response_model=sc.ConversationOut, tags=["conversations"]
)
async def patch_conversation(
    conversation_id: int, body: sc.ConversationPatch, who: Who, rt: RT
) -> dict[str, Any]:
    conv, labels = await check_update_conversation(
        rt,
        who,
        conversation_id,
        status=body.status,
        assignee_id=body.assignee_id if "assignee_id" in body.model_fields_set else UNSET,
        team_id=body.team_id if "team_id" in body.model_fields_set else UNSET,
        labels=body.labels,
    )
    return conversation_dict(conv, labels)


@router.get(
    "/conversations/{conversation_id}/messages",
    response_model=sc.MessagePage,
    tags=["conversations"],
)
async def list_messages(
    conversation_id: int,
    who: Who,
    rt: RT,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[
        str | None, Query(description="next_cursor of the previous page (older messages)")
    ] = None,
) -> dict[str, Any]:
    """Messages oldest first within a page; pages walk back in time from the newest."""
    async with rt.db.read() as s:
        require_conversation(who, await s.get(Conversation, conversation_id))
        q = select(Message).where(Message.conversation_id == conversation_id)
        page = keyset_page(q, cursor, limit, at_col=Message.sent_at, id_col=Message.id)
        rows = list((await s.scalars(page)).all())
        next_cursor = page_cursor(rows, limit, "sent_at")
        rows = rows[:limit]
        atts: dict[int, list[Attachment]] = {}
        if rows:
            # In the order they came (PostgreSQL returns updated rows in any order otherwise).
            files = select(Attachment).where(Attachment.message_id.in_([m.id for m in rows]))
            atts = grouped(
                (a.message_id, a) for a in await s.scalars(files.order_by(Attachment.id))
            )
    return {
        "data": [message_dict(m, atts.get(m.id)) for m in reversed(rows)],
        "next_cursor": next_cursor,
    }


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=201,
    response_model=sc.MessageOut,
    tags=["conversations"],
)
async def reply(conversation_id: int, body: sc.ReplyIn, who: Who, rt: RT) -> dict[str, Any]:
    """Queue a reply. Refused with 422 and a reason when the channel's policy does not allow it
    (window closed, opted out, too long...). Status then moves queued → sent → delivered → read.

    Instead of text: `template` (an approved WhatsApp template with its values), `interactive`
    (reply buttons, a list, quick replies) or `reaction` (an emoji on one of the thread's
    messages), each checked against the channel's rules before it is queued."""
    rich = await send_rich(rt, who, conversation_id, body)
    if rich is not None:
        return message_dict(rich)
    message = await check_send_reply(
        rt, who, conversation_id, body.text, body.channel_id, body.attachment_ids
    )
    files = await attachments_of(rt, message.id) if body.attachment_ids else None
    return message_dict(message, files)


# --- contacts -------------------------------------------------------------------------------


@router.get("/contacts", response_model=sc.ContactPage, tags=["contacts"])
async def list_contacts(
    who: Who,
    rt: RT,
    q: Annotated[str | None, Query(description="name, email, phone or channel address")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    stmt = contacts_where(who, q, None, None, None)
    async with rt.db.read() as s:
        rows = list((await s.scalars(stmt.order_by(Contact.id.desc()).limit(limit))).all())
        idents = await identities_by_contact(s, [c.id for c in rows])
    return {"data": [contact_dict(c, idents.get(c.id)) for c in rows]}


@router.get("/contacts/{contact_id}", response_model=sc.ContactOut, tags=["contacts"])
async def get_contact(contact_id: int, who: Who, rt: RT) -> dict[str, Any]:
    async with rt.db.read() as s:
        c = await require_contact(s, who, contact_id)
        idents = await identities_by_contact(s, [c.id])
    return contact_dict(c, idents.get(c.id))


@router.get("/messages/search", response_model=sc.MessagePage, tags=["conversations"])
async def search_messages(
    who: Who,
    rt: RT,
    q: Annotated[str, Query(min_length=1, max_length=200, description="words to find")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """Full-text search over message text the agent may see, newest first. All words must
    match; the last one also matches as a prefix."""
    if not words(q):
        raise InvalidInput("q: give at least one word to search for")
    async with rt.db.read() as s:
        rows = await run_search(s, who, q, limit)
    return {"data": [message_dict(m) for m in rows], "next_cursor": None}


# --- outgoing webhooks ----------------------------------------------------------------------


@router.post(
    "/webhook_subscriptions", status_code=201, response_model=sc.SubscriptionOut, tags=["webhooks"]
)
async def create_subscription(body: sc.SubscriptionCreate, who: Who, rt: RT) -> dict[str, Any]:
    """Subscribe a URL to events. POSTs are signed: see the X-Tidings-Signature docs."""
    sub, secret = await admin.create_subscription(rt, who, body.url, body.events, body.secret)
    return sc.answer(sc.SubscriptionOut, sub, secret=secret)


@router.get("/webhook_subscriptions", response_model=list[sc.SubscriptionOut], tags=["webhooks"])
async def list_subscriptions(who: Who, rt: RT) -> list[dict[str, Any]]:
    require_admin(who)
    async with rt.db.read() as s:
        rows = await workspace_rows(s, WebhookSubscription, who.workspace_id)
    return [sc.answer(sc.SubscriptionOut, r, secret=None) for r in rows]


@router.patch(
    "/webhook_subscriptions/{subscription_id}",
    response_model=sc.SubscriptionOut,
    tags=["webhooks"],
)
async def update_subscription(
    subscription_id: int, body: sc.SubscriptionPatch, who: Who, rt: RT
) -> dict[str, Any]:
    """Pause (`active: false`) or resume a subscription, or change its URL or events."""
    sub = await subs.check_update_subscription(
        rt, who, subscription_id, active=body.active, url=body.url, events=body.events
    )
    return sc.answer(sc.SubscriptionOut, sub, secret=None)


@router.delete("/webhook_subscriptions/{subscription_id}", status_code=204, tags=["webhooks"])
async def delete_subscription(subscription_id: int, who: Who, rt: RT) -> None:
    """Delete the subscription and its delivery log."""
    await subs.check_delete_subscription(rt, who, subscription_id)


@router.get(
    "/webhook_subscriptions/{subscription_id}/deliveries",
    response_model=list[sc.WebhookDeliveryOut],
    tags=["webhooks"],
)
async def list_webhook_deliveries(
    subscription_id: int, who: Who, rt: RT, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[dict[str, Any]]:
    require_admin(who)
    async with rt.db.read() as s:
        await require_own(s, who, WebhookSubscription, subscription_id, "webhook subscription")
        rows = (
            await s.scalars(
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.subscription_id == subscription_id,
                    WebhookDelivery.workspace_id == who.workspace_id,
                )
                .order_by(WebhookDelivery.id.desc())
                .limit(limit)
            )
        ).all()
    return [sc.answer(sc.WebhookDeliveryOut, d) for d in rows]


@router.post("/webhook_deliveries/{delivery_id}/replay", response_model=sc.Count, tags=["webhooks"])
async def replay_webhook_delivery(delivery_id: int, who: Who, rt: RT) -> dict[str, int]:
    require_admin(who)
    if not await outgoing.replay(rt, who.workspace_id, delivery_id):
        raise NotFound("webhook delivery not found")
    return {"count": 1}


# --- inbound events (admin) -----------------------------------------------------------------


@router.get("/inbound_events", response_model=list[sc.InboundEventOut], tags=["admin"])
async def list_inbound_events(
    who: Who, rt: RT, state: str | None = "failed", limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[dict[str, Any]]:
    require_admin(who)
    q = select(InboundEvent).where(InboundEvent.workspace_id == who.workspace_id)
    if state:
        q = q.where(InboundEvent.state == state)
    async with rt.db.read() as s:
        rows = (await s.scalars(q.order_by(InboundEvent.id.desc()).limit(limit))).all()
    return [sc.answer(sc.InboundEventOut, e) for e in rows]


@router.post("/inbound_events/replay", response_model=sc.Count, tags=["admin"])
async def replay_inbound_events(body: sc.ReplayIn, who: Who, rt: RT) -> dict[str, int]:
    """Queue failed inbound events again, e.g. after a fix."""
    require_admin(who)
    async with rt.db.read() as s:
        owned = select(InboundEvent.id).where(
            InboundEvent.workspace_id == who.workspace_id, InboundEvent.state == "failed"
        )
        if body.ids:
            owned = owned.where(InboundEvent.id.in_(body.ids))
        if body.channel_id is not None:
            owned = owned.where(InboundEvent.channel_id == body.channel_id)
        ids = list((await s.scalars(owned)).all())
    count = await ingest.replay(rt, event_ids=ids) if ids else 0
    return {"count": count}


@router.get("/inbound/lag", response_model=sc.InboundLagOut, tags=["live"])
async def inbound_lag(who: Who, rt: RT) -> dict[str, Any]:
    """How long the oldest waiting inbound event has been waiting, per lane: the agent UI's
    "incoming messages delayed" banner. Cached per process (about once a second), so polling
    it from every open inbox costs no query per request. Receipts (the `status` lane) may lag
    during a broadcast by design; only admins see that lane."""
    lanes = await rt.lag.read()
    return {
        "customer": sc.answer(sc.LaneLagOut, lanes[InboundLane.CUSTOMER]),
        "status": sc.answer(sc.LaneLagOut, lanes[InboundLane.STATUS]) if who.is_admin else None,
        "warn_seconds": CUSTOMER_WARN_SECONDS,
    }


# --- tokens, me -----------------------------------------------------------------------------


@router.post("/api_tokens", status_code=201, response_model=sc.TokenOut, tags=["admin"])
async def create_token(body: sc.TokenCreate, who: Who, rt: RT) -> dict[str, Any]:
    """A token of the caller's agent, shown once. Scopes and expiry never exceed the calling
    token's."""
    row, token = await admin.issue_api_token(
        rt, who, body.name, list(body.scopes) if body.scopes is not None else None, body.expires_at
    )
    return sc.answer(sc.TokenOut, row, token=token, scopes=row.scopes.split())


@router.post("/me/password", status_code=204, tags=["admin"])
async def change_password(
    body: sc.PasswordChange, request: Request, response: Response, who: Who, rt: RT
) -> None:
    """Change one's own password (the current one is required). Every other session and every
    API token of the agent stop working; a browser session gets a fresh cookie."""
    agent = await check_change_own_password(rt, who, body.current_password, body.new_password)
    if who.token_id is None and request.cookies.get(SESSION_COOKIE):
        set_session_cookie(rt, response, agent)


@router.get("/me", response_model=sc.MeOut, tags=["admin"])
async def me(who: Who) -> dict[str, Any]:
    return {
        "agent_id": who.agent_id,
        "workspace_id": who.workspace_id,
        "role": who.role,
        "inbox_ids": member_inbox_ids(who),
    }


# --- live events ----------------------------------------------------------------------------

KEEPALIVE_SECONDS = 15.0


@router.get("/events", tags=["live"], response_class=StreamingResponse)
async def events(request: Request, who: Who, rt: RT) -> StreamingResponse:
    """Server-sent events for everything this agent may see. Reconnect with `Last-Event-ID`
    to receive what was missed."""
    last_id = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    return StreamingResponse(
        _sse(rt, who, last_id, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse(
    rt: Runtime, who: Principal, last_id: str | None, request: Request | None = None
) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n: connected\n\n"
    source = rt.bus.subscribe(last_id, idle=KEEPALIVE_SECONDS)
    checked = time.monotonic()
    try:
        async for event in source:
            if request is not None and time.monotonic() - checked > KEEPALIVE_SECONDS:
                # A stream outlives its sign-in: after a logout, a password change or a
                # deactivation it ends within KEEPALIVE_SECONDS (the client's reconnect then
                # gets 401). Access changes (inboxes, role) take effect the same way.
                checked = time.monotonic()
                try:
                    who = await authenticate(request)
                except (Unauthorized, Forbidden):
                    return
            if event is IDLE:
                yield b": keepalive\n\n"
            elif can_see_event(who, event):
                yield event.sse_frame()
    finally:
        with contextlib.suppress(Exception):
            await source.aclose()  # type: ignore[attr-defined]
