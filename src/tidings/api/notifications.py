"""The agent's bell and saved views: `GET /api/v1/notifications` (newest first, with the
unread count), `POST /api/v1/notifications/read` (some, one conversation's, or all),
`GET/POST /api/v1/views` and `DELETE /api/v1/views/{id}` (saved list filters, per agent).

Notifications are written by the unit of work (actions/notifications.py) and arrive live as
`notification.created`, which only their agent receives. An agent sees only their own rows,
and only for conversations they can still see.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from tidings.access import Principal, visible_conversations
from tidings.actions import notifications as actions
from tidings.actions import saved_views
from tidings.api.deps import RT, Who
from tidings.api.schemas import Strict
from tidings.api.ui import BulkFilter
from tidings.domain.errors import InvalidInput
from tidings.runtime import Runtime
from tidings.serialize import display_name
from tidings.storage.models import Agent, Contact, Conversation, Notification, SavedView

router = APIRouter(prefix="/api/v1", tags=["notifications"])


class NotificationOut(BaseModel):
    id: int
    kind: str = Field(description=" | ".join(actions.KINDS))
    conversation_id: int
    message_id: int | None
    actor_agent_id: int | None
    actor_name: str | None = Field(description="Who mentioned or assigned; null: a customer")
    contact_name: str = Field(description="The customer of the conversation")
    body: str | None = Field(description="The note, reply or system line (text, capped)")
    created_at: datetime
    read_at: datetime | None


class NotificationsOut(BaseModel):
    items: list[NotificationOut]
    unread: int


class ReadIn(Strict):
    ids: list[int] | None = Field(default=None, max_length=500)
    conversation_id: int | None = None
    all: bool = Field(default=False, description="Mark every notification of mine read")


class ReadOut(BaseModel):
    marked: int
    unread: int


async def _unread(rt: Runtime, who: Principal) -> int:
    async with rt.db.read() as s:
        n = await s.scalar(
            select(func.count())
            .select_from(Notification)
            .join(Conversation, Conversation.id == Notification.conversation_id)
            .where(
                Notification.agent_id == who.agent_id,
                Notification.read_at.is_(None),
                visible_conversations(who),
            )
        )
    return int(n or 0)


@router.get("/notifications", response_model=NotificationsOut)
async def list_notifications(
    who: Who,
    rt: RT,
    unread_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> NotificationsOut:
    """My notifications, newest first."""
    q = (
        select(Notification, Contact, Agent.name)
        .join(Conversation, Conversation.id == Notification.conversation_id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .outerjoin(Agent, Agent.id == Notification.actor_agent_id)
        .where(Notification.agent_id == who.agent_id, visible_conversations(who))
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    if unread_only:
        q = q.where(Notification.read_at.is_(None))
    async with rt.db.read() as s:
        rows = (await s.execute(q)).all()
    items = [
        NotificationOut(
            id=n.id,
            kind=n.kind,
            conversation_id=n.conversation_id,
            message_id=n.message_id,
            actor_agent_id=n.actor_agent_id,
            actor_name=actor,
            contact_name=display_name(c.id, c.name, c.phone_e164),
            body=n.body,
            created_at=n.created_at,
            read_at=n.read_at,
        )
        for n, c, actor in rows
    ]
    return NotificationsOut(items=items, unread=await _unread(rt, who))


@router.post("/notifications/read", response_model=ReadOut)
async def mark_read(body: ReadIn, who: Who, rt: RT) -> ReadOut:
    """Mark my notifications read: `ids`, or those of `conversation_id`, or `all`."""
    if not body.all and body.ids is None and body.conversation_id is None:
        raise InvalidInput("say which: ids, conversation_id or all")
    marked = await actions.check_mark_read(
        rt, who.agent_id, None if body.all else body.ids, body.conversation_id
    )
    return ReadOut(marked=marked, unread=await _unread(rt, who))


# --- saved views ---------------------------------------------------------------------------


class ViewFilters(BulkFilter):
    """The list's query, as the inbox sends it (GET /api/v1/ui/conversations)."""

    label: str | None = Field(default=None, max_length=100)
    sla: str | None = None
    sort: str | None = None


class ViewIn(Strict):
    name: str = Field(min_length=1, max_length=80)
    filters: ViewFilters


class ViewOut(BaseModel):
    id: int
    name: str
    filters: dict[str, Any]


def _view_out(v: SavedView) -> ViewOut:
    return ViewOut(id=v.id, name=v.name, filters=v.filters or {})


@router.get("/views", response_model=list[ViewOut])
async def list_views(who: Who, rt: RT) -> list[ViewOut]:
    """My saved views, by name."""
    async with rt.db.read() as s:
        rows = (
            await s.scalars(
                select(SavedView).where(SavedView.agent_id == who.agent_id).order_by(SavedView.name)
            )
        ).all()
    return [_view_out(v) for v in rows]


@router.post("/views", response_model=ViewOut, status_code=201)
async def create_view(body: ViewIn, who: Who, rt: RT) -> ViewOut:
    """Save the list's current filters under a name (a name is mine once)."""
    view = await saved_views.check_save_view(
        rt, who, body.name, body.filters.model_dump(exclude_none=True)
    )
    return _view_out(view)


@router.delete("/views/{view_id}", status_code=204)
async def delete_view(view_id: int, who: Who, rt: RT) -> None:
    await saved_views.check_delete_view(rt, who, view_id)
