"""Every "may this agent see or change this?" decision, in one place.

Owners and admins see every inbox of their workspace; agents see the inboxes they are members
of. Nothing crosses workspaces. A contact is visible to an agent who can see one of its
conversations. An API token carries scopes that narrow what its agent may do through it:
`read` (GET), `reply` (any change), `admin` (owner/admin routes, on top of the agent's role).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, TypeVar

from sqlalchemy import ColumnElement, SQLColumnExpression, and_, exists, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.domain.enums import LiveEventType, Role
from tidings.domain.errors import Forbidden, NotFound
from tidings.realtime.bus import LiveEvent
from tidings.storage.models import Agent, Channel, Contact, Conversation, Inbox, InboxMember

SCOPES = ("read", "reply", "admin")
ALL_SCOPES = frozenset(SCOPES)


@dataclass(frozen=True, slots=True)
class Principal:
    workspace_id: int
    agent_id: int
    role: Role
    inbox_ids: frozenset[int]
    # What this request may do: every scope for a session, the token's scopes for a token.
    scopes: frozenset[str] = ALL_SCOPES
    token_id: int | None = None

    @property
    def is_admin(self) -> bool:
        """Sees as an owner/admin (every inbox). Changing admin things also needs the `admin`
        scope: `require_admin`."""
        return self.role in (Role.OWNER, Role.ADMIN)

    @property
    def is_owner(self) -> bool:
        return self.role == Role.OWNER


def can_see_inbox(who: Principal, workspace_id: int, inbox_id: int) -> bool:
    if who.workspace_id != workspace_id:
        return False
    if who.is_admin:
        return True
    return inbox_id in who.inbox_ids


def can_see_channel(who: Principal, channel: Channel) -> bool:
    """A channel is seen by whoever sees its inbox."""
    return can_see_inbox(who, channel.workspace_id, channel.inbox_id)


def visible_channels(who: Principal, channels: Iterable[Channel]) -> list[Channel]:
    return [c for c in channels if can_see_channel(who, c)]


def visible_inbox_ids(who: Principal) -> frozenset[int] | None:
    """The inboxes `who` sees within the workspace; None for every one (owners and admins)."""
    return None if who.is_admin else who.inbox_ids


def member_inbox_ids(who: Principal) -> list[int]:
    """The inboxes `who` is a member of (owners and admins see others too), sorted."""
    return sorted(who.inbox_ids)


def inbox_filter(who: Principal, inbox_column: SQLColumnExpression[int]) -> ColumnElement[bool]:
    """SQL condition: `inbox_column` names an inbox `who` sees. The workspace condition is the
    caller's (the table's own `workspace_id`)."""
    ids = visible_inbox_ids(who)
    return true() if ids is None else inbox_column.in_(ids)


async def require_inbox(session: AsyncSession, who: Principal, inbox_id: int) -> Inbox:
    """The inbox, if `who` sees it; else NotFound (not there and not visible answer alike)."""
    inbox = await session.get(Inbox, inbox_id)
    if inbox is None or not can_see_inbox(who, inbox.workspace_id, inbox.id):
        raise NotFound("inbox not found")
    return inbox


async def require_channel(session: AsyncSession, who: Principal, channel_id: int) -> Channel:
    """The channel, if `who` sees its inbox; else NotFound, as for a channel not there."""
    channel = await session.get(Channel, channel_id)
    if channel is None or not can_see_channel(who, channel):
        raise NotFound("channel not found")
    return channel


class WorkspaceRow(Protocol):
    @property
    def workspace_id(self) -> int: ...


RowT = TypeVar("RowT", bound=WorkspaceRow)


async def require_own(
    session: AsyncSession, who: Principal, model: type[RowT], row_id: int, what: str
) -> RowT:
    """Row `row_id` of `model` if it belongs to `who`'s workspace; else NotFound("<what> not
    found"): another workspace's row and a missing one answer alike."""
    row = await session.get(model, row_id)
    if row is None or row.workspace_id != who.workspace_id:
        raise NotFound(f"{what} not found")
    return row


class Audience(Enum):
    """Who may receive a live event of some type (`EVENT_AUDIENCE`)."""

    WORKSPACE = "workspace"  # every agent of the workspace (nothing in it is inbox data)
    INBOX = "inbox"  # agents who can see one of the event's inboxes (`LiveEvent.inboxes`)
    ADMINS = "admins"  # owners and admins
    AGENT = "agent"  # only the agent named in the event's `agent_id` (their own bell)


# Every live event type the bus carries, and who may receive it: the one rule the SSE stream
# applies (`can_see_event`). A type missing here reaches owners and admins only, so a new event
# leaks nothing until it is placed (tests/security/test_authz_matrix.py checks that every type
# emitted in src/ is listed).
EVENT_AUDIENCE: dict[str, Audience] = {
    LiveEventType.CONVERSATION_CREATED: Audience.INBOX,
    LiveEventType.CONVERSATION_UPDATED: Audience.INBOX,
    LiveEventType.MESSAGE_CREATED: Audience.INBOX,
    LiveEventType.MESSAGE_UPDATED: Audience.INBOX,
    # Several messages of one conversation changed status in one batch (actions/statuses.py).
    LiveEventType.MESSAGES_UPDATED: Audience.INBOX,
    LiveEventType.CONSENT_UPDATED: Audience.INBOX,
    LiveEventType.PRESENCE: Audience.INBOX,
    LiveEventType.CSAT_ANSWERED: Audience.INBOX,
    # Contact events carry the inboxes of the contact's conversations (`contact_inboxes`).
    LiveEventType.CONTACT_MERGED: Audience.INBOX,
    LiveEventType.CONTACT_PREFERENCE: Audience.INBOX,
    # A name fetched from the provider's profile API, one event per inbox (actions/profiles.py).
    LiveEventType.CONTACT_UPDATED: Audience.INBOX,
    # Templates belong to a channel, which belongs to an inbox (api/message_templates.py).
    LiveEventType.TEMPLATE_UPDATED: Audience.INBOX,
    LiveEventType.TEMPLATES_SYNCED: Audience.INBOX,
    # The campaigns API is owners' and admins' (api/campaigns.py); so are channel settings,
    # where a provider's notice about a channel is shown.
    LiveEventType.CHANNEL_NOTICE: Audience.ADMINS,
    LiveEventType.CAMPAIGN_UPDATED: Audience.ADMINS,
    # "Something changed, refresh": names what changed, no inbox data.
    LiveEventType.SETTINGS_UPDATED: Audience.WORKSPACE,
    LiveEventType.WORKSPACE_UPDATED: Audience.WORKSPACE,
    LiveEventType.AGENT_AVAILABILITY: Audience.WORKSPACE,
    # An agent's own notification (actions/notifications.py): theirs alone, admins included.
    LiveEventType.NOTIFICATION_CREATED: Audience.AGENT,
}


def can_see_event(who: Principal, event: LiveEvent) -> bool:
    if event.workspace_id != who.workspace_id:
        return False
    audience = EVENT_AUDIENCE.get(event.type, Audience.ADMINS)
    if audience is Audience.AGENT:
        return event.data.get("agent_id") == who.agent_id
    if who.is_admin:
        return True
    if audience is Audience.WORKSPACE:
        return True
    if audience is Audience.INBOX:
        return any(i in who.inbox_ids for i in event.inboxes())
    return False


async def agents_seeing_conversations(
    session: AsyncSession, pairs: Iterable[tuple[int, int]]
) -> set[tuple[int, int]]:
    """Of these (agent, conversation) pairs, those where the agent may see the conversation
    (same workspace; owner/admin, or a member of its inbox): who may be notified of it."""
    wanted = set(pairs)
    if not wanted:
        return set()
    agent_ids = {a for a, _ in wanted}
    conv_ids = {c for _, c in wanted}
    agents = {
        a.id: a for a in (await session.scalars(select(Agent).where(Agent.id.in_(agent_ids)))).all()
    }
    convs = {
        cid: (inbox_id, ws_id)
        for cid, inbox_id, ws_id in (
            await session.execute(
                select(Conversation.id, Conversation.inbox_id, Conversation.workspace_id).where(
                    Conversation.id.in_(conv_ids)
                )
            )
        ).all()
    }
    members = set(
        (
            await session.execute(
                select(InboxMember.agent_id, InboxMember.inbox_id).where(
                    InboxMember.agent_id.in_(agent_ids)
                )
            )
        ).all()
    )
    out = set()
    for agent_id, conv_id in wanted:
        agent = agents.get(agent_id)
        if agent is None or not agent.active or conv_id not in convs:
            continue
        inbox_id, ws_id = convs[conv_id]
        if agent.workspace_id != ws_id:
            continue
        if agent.role in (Role.OWNER, Role.ADMIN) or (agent_id, inbox_id) in members:
            out.add((agent_id, conv_id))
    return out


async def contact_inboxes(session: AsyncSession, contact_ids: Iterable[int]) -> tuple[int, ...]:
    """The inboxes holding a conversation of these contacts: who may hear about them."""
    ids = list(contact_ids)
    if not ids:
        return ()
    rows = await session.scalars(
        select(Conversation.inbox_id).where(Conversation.contact_id.in_(ids)).distinct()
    )
    return tuple(sorted(rows.all()))


def visible_conversations(who: Principal) -> ColumnElement[bool]:
    """SQL condition for the conversations `who` may list."""
    return and_(
        Conversation.workspace_id == who.workspace_id, inbox_filter(who, Conversation.inbox_id)
    )


def visible_contacts(who: Principal) -> ColumnElement[bool]:
    """SQL condition for the contacts `who` may see: owners and admins every contact of the
    workspace; agents those with a conversation in one of their inboxes."""
    in_workspace = Contact.workspace_id == who.workspace_id
    if who.is_admin:
        return and_(in_workspace, true())
    talked_here = exists().where(
        Conversation.contact_id == Contact.id, inbox_filter(who, Conversation.inbox_id)
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
    if conversation is None or not can_see_inbox(
        who, conversation.workspace_id, conversation.inbox_id
    ):
        raise NotFound("conversation not found")
    return conversation


def require_admin(who: Principal) -> None:
    if not who.is_admin:
        raise Forbidden("only owners and admins may do this")
    if "admin" not in who.scopes:
        raise Forbidden("this API token lacks the 'admin' scope")


def may_change_agent(who: Principal, target_role: str) -> bool:
    """Owners are changed (password, name, role, access, tokens, reset links) only by an owner:
    an admin could otherwise take the owner's account over."""
    if "admin" not in who.scopes:
        return False
    if target_role == Role.OWNER:
        return who.is_owner
    return who.is_admin
