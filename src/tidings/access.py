"""Every "may this agent see or change this?" decision, in one place.

Owners and admins see every inbox of their workspace; agents see the inboxes they are members
of. Nothing crosses workspaces.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.domain.enums import Role
from tidings.domain.errors import Forbidden, NotFound
from tidings.realtime.bus import LiveEvent
from tidings.storage.models import Contact, Conversation


@dataclass(frozen=True, slots=True)
class Principal:
    workspace_id: int
    agent_id: int
    role: Role
    inbox_ids: frozenset[int]

    @property
    def is_admin(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN)


def can_see_inbox(who: Principal, workspace_id: int, inbox_id: int) -> bool:
    if who.workspace_id != workspace_id:
        return False
    if who.is_admin:
        return True
    return inbox_id in who.inbox_ids


def can_see_event(who: Principal, event: LiveEvent) -> bool:
    if event.workspace_id != who.workspace_id:
        return False
    if event.inbox_id is None:
        return True
    return can_see_inbox(who, event.workspace_id, event.inbox_id)


def visible_conversations(who: Principal) -> ColumnElement[bool]:
    """SQL condition for the conversations `who` may list."""
    in_workspace = Conversation.workspace_id == who.workspace_id
    if who.is_admin:
        return and_(in_workspace, true())
    return and_(in_workspace, Conversation.inbox_id.in_(who.inbox_ids))


def visible_contacts(who: Principal) -> ColumnElement[bool]:
    """SQL condition for the contacts `who` may see: owners and admins every contact of the
    workspace; agents those with a conversation in one of their inboxes."""
    in_workspace = Contact.workspace_id == who.workspace_id
    if who.is_admin:
        return and_(in_workspace, true())
    talked_here = exists().where(
        Conversation.contact_id == Contact.id, Conversation.inbox_id.in_(who.inbox_ids)
    )
    return and_(in_workspace, talked_here)


async def require_contact(session: AsyncSession, who: Principal, contact_id: int) -> Contact:
    """The contact, if `who` may see it; else NotFound (not there and not visible answer alike)."""
    contact = await session.scalar(
        select(Contact).where(Contact.id == contact_id, visible_contacts(who))
    )
    if contact is None:
        raise NotFound("contact not found")
    return contact


def require_conversation(who: Principal, conversation: Conversation | None) -> Conversation:
    # Not visible and not there answer alike, so ids cannot be probed across workspaces.
    if conversation is None:
        raise NotFound("conversation not found")
    if not can_see_inbox(who, conversation.workspace_id, conversation.inbox_id):
        raise NotFound("conversation not found")
    return conversation


def require_admin(who: Principal) -> None:
    if not who.is_admin:
        raise Forbidden("only owners and admins may do this")
