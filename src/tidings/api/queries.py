"""The reads the public API and the inbox's own routes (`api/ui.py`) share: the conversation
list's filters and keyset pages, labels per conversation, identities per contact. The inbox
shows the same rows as `GET /api/v1/conversations` and `/contacts`, plus fields of its own, so
both go through these functions."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.access import Principal, visible_conversations
from tidings.domain.enums import ConversationStatus
from tidings.domain.errors import InvalidInput
from tidings.storage.models import (
    ContactIdentity,
    Conversation,
    ConversationChannel,
    ConversationLabel,
    Inbox,
    InboxMember,
    Label,
)


def encode_cursor(at: datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        at, _, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, int(row_id)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor: not a cursor this API returned") from None


def conversations_where(
    who: Principal,
    *,
    status: ConversationStatus | None = None,
    inbox_id: int | None = None,
    channel_id: int | None = None,
    label: str | None = None,
    sla: str | None = None,
    team_id: int | None = None,
) -> Select[Conversation]:
    """The conversations this agent may see that match the list's filters (None: any)."""
    q = select(Conversation).where(visible_conversations(who))
    if status is not None:
        q = q.where(Conversation.status == status)
    if inbox_id is not None:
        q = q.where(Conversation.inbox_id == inbox_id)
    if channel_id is not None:
        q = q.where(
            exists().where(
                ConversationChannel.conversation_id == Conversation.id,
                ConversationChannel.channel_id == channel_id,
            )
        )
    if team_id is not None:
        q = q.where(Conversation.team_id == team_id)
    if label is not None:
        q = q.where(
            exists().where(
                ConversationLabel.conversation_id == Conversation.id,
                ConversationLabel.label_id == Label.id,
                Label.name == label,
                Label.workspace_id == who.workspace_id,
            )
        )
    if sla is not None:
        if sla not in ("running", "breached"):
            raise InvalidInput("sla: running or breached")
        q = q.where(Conversation.sla_state == sla)
    return q


def keyset_page(
    q: Select[Any],
    cursor: str | None,
    limit: int,
    newest_first: bool = True,
    *,
    at_col: Any = Conversation.last_activity_at,
    id_col: Any = Conversation.id,
) -> Select[Any]:
    """One keyset page on (at_col, id_col) — a conversation's (last_activity_at, id) unless
    said — one row more than `limit` to tell whether there is a next page;
    `newest_first=False` walks from the oldest (the conversation longest waiting)."""
    if cursor is not None:
        at, row_id = decode_cursor(cursor)
        if newest_first:
            q = q.where(or_(at_col < at, and_(at_col == at, id_col < row_id)))
        else:
            q = q.where(or_(at_col > at, and_(at_col == at, id_col > row_id)))
    order = (at_col.desc(), id_col.desc()) if newest_first else (at_col.asc(), id_col.asc())
    return q.order_by(*order).limit(limit + 1)


def page_cursor(rows: Sequence[Any], limit: int, at: str = "last_activity_at") -> str | None:
    """The cursor of the page after `rows` (fetched with `keyset_page` on `at`), or None."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return encode_cursor(getattr(last, at), last.id)


K = TypeVar("K")
V = TypeVar("V")


def grouped(pairs: Iterable[tuple[K, V]]) -> dict[K, list[V]]:
    """`(key, value)` pairs as {key: [its values, in their order]}."""
    out: dict[K, list[V]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


async def labels_by_conversation(s: AsyncSession, ids: list[int]) -> dict[int, list[str]]:
    q = (
        select(ConversationLabel.conversation_id, Label.name)
        .join(Label, Label.id == ConversationLabel.label_id)
        .where(ConversationLabel.conversation_id.in_(ids))
    )
    return grouped(await s.execute(q)) if ids else {}


async def identities_by_contact(
    s: AsyncSession, contact_ids: list[int]
) -> dict[int, list[ContactIdentity]]:
    """Each contact's channel identities, oldest first."""
    if not contact_ids:
        return {}
    mine = ContactIdentity.contact_id.in_(contact_ids)
    q = select(ContactIdentity).where(mine).order_by(ContactIdentity.id)
    return grouped((i.contact_id, i) for i in await s.scalars(q))


async def workspace_rows(s: AsyncSession, model: Any, workspace_id: int, *order: Any) -> list[Any]:
    """The workspace's rows of `model` (a table with `workspace_id`), in `order`."""
    mine = select(model).where(model.workspace_id == workspace_id)
    return list((await s.scalars(mine.order_by(*order))).all())


async def inbox_ids_by_agent(s: AsyncSession, workspace_id: int) -> dict[int, list[int]]:
    """The inboxes of the workspace each agent is a member of, by agent id (ids ascending)."""
    q = (
        select(InboxMember.agent_id, InboxMember.inbox_id)
        .join(Inbox, Inbox.id == InboxMember.inbox_id)
        .where(Inbox.workspace_id == workspace_id)
        .order_by(InboxMember.inbox_id)
    )
    return grouped(await s.execute(q))
