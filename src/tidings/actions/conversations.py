"""Changing conversations: status, assignee, labels."""

from __future__ import annotations

from sqlalchemy import delete, select

from tidings.access import Principal, require_conversation
from tidings.actions import csat, sla
from tidings.actions.base import Tx, lock_contacts, require_own_ids, transaction
from tidings.actions.system_line import do_system_line
from tidings.domain import live_events
from tidings.domain.enums import ConversationStatus, Queue
from tidings.domain.errors import InvalidInput
from tidings.runtime import Runtime
from tidings.serialize import conversation_dict
from tidings.storage.models import (
    Agent,
    Conversation,
    ConversationLabel,
    InboxMember,
    Label,
    Team,
)
from tidings.storage.types import utcnow

UNSET = object()


async def check_update_conversation(
    rt: Runtime,
    who: Principal,
    conversation_id: int,
    *,
    status: str | None = None,
    assignee_id: int | object | None = UNSET,
    labels: list[str] | None = None,
    team_id: int | object | None = UNSET,
    assignment_line: bool = True,
) -> tuple[Conversation, list[str]]:
    """`assignment_line`: write the thread's "X assigned Y" line for an assignee change (a rule
    narrates its own instead, automation/engine.py)."""
    async with transaction(rt) as tx:
        s = tx.session
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        was_status, was_assignee = conv.status, conv.assignee_id
        if status is not None:
            await lock_contacts(tx, [conv.contact_id])  # lock order: as ingest
        if status is not None:
            try:
                conv.status = ConversationStatus(status)
            except ValueError:
                raise InvalidInput(
                    f"status: one of {', '.join(s.value for s in ConversationStatus)}"
                ) from None
            if conv.status != ConversationStatus.SNOOZED:
                conv.snoozed_until = None
        if assignee_id is not UNSET:
            if assignee_id is not None:
                assert isinstance(assignee_id, int)
                agent = await s.get(Agent, assignee_id)
                if agent is None or agent.workspace_id != conv.workspace_id:
                    raise InvalidInput(f"assignee_id: no agent {assignee_id} in this workspace")
                member = await s.get(InboxMember, (conv.inbox_id, assignee_id))
                if member is None and agent.role == "agent":
                    raise InvalidInput(
                        f"assignee_id: agent {assignee_id} is not a member of this inbox"
                    )
            conv.assignee_id = assignee_id
        if team_id is not UNSET:
            if team_id is not None:
                assert isinstance(team_id, int)
                await require_own_ids(tx, who, Team, [team_id], "team_id", "team")
            conv.team_id = team_id
        if labels is not None:
            names = sorted({n.strip() for n in labels if n.strip()})
            await s.execute(
                delete(ConversationLabel).where(ConversationLabel.conversation_id == conv.id)
            )
            for name in names:
                label = await s.scalar(
                    select(Label).where(Label.workspace_id == conv.workspace_id, Label.name == name)
                )
                if label is None:
                    label = Label(workspace_id=conv.workspace_id, name=name, color="#6b7280")
                    s.add(label)
                    await s.flush()
                s.add(ConversationLabel(conversation_id=conv.id, label_id=label.id))
        resolved = ConversationStatus.RESOLVED
        if conv.status == resolved and was_status != resolved:
            sla.on_resolved(conv)
            await csat.on_resolved(tx, conv)
        if conv.status != was_status or conv.assignee_id != was_assignee:
            # Capacity freed or a conversation to queue: the assignment queue may move.
            tx.wake_after_commit(Queue.ASSIGNMENT)
        if conv.assignee_id != was_assignee and assignment_line:
            await _assignment_line(tx, who, conv)
        conv.updated_at = utcnow()
        await s.flush()
        return conv, await do_announce(tx, conv)


async def _assignment_line(tx: Tx, who: Principal, conv: Conversation) -> None:
    """The thread says who handed the conversation to whom, in the change's own transaction,
    whichever way it was made (the inbox, the REST API, a bulk action, a rule): the line is
    also what tells the new assignee (actions/notifications.py)."""
    names = dict(
        (
            await tx.session.execute(
                select(Agent.id, Agent.name).where(
                    Agent.id.in_([i for i in (who.agent_id, conv.assignee_id) if i is not None])
                )
            )
        ).all()
    )
    me = names.get(who.agent_id, "Someone")
    if conv.assignee_id is None:
        text = f"{me} unassigned this"
    else:
        text = f"{me} assigned {names.get(conv.assignee_id, f'agent #{conv.assignee_id}')}"
    await do_system_line(
        tx,
        conv,
        text,
        {"event": "assigned", "assignee_id": conv.assignee_id},
        sender_agent_id=who.agent_id,
    )


async def do_announce(tx: Tx, conv: Conversation) -> list[str]:
    """`conversation.updated` for a changed conversation, with its labels (returned)."""
    labels = await labels_of(tx.session, conv.id)
    tx.emit_for(live_events.CONVERSATION_UPDATED(conversation_dict(conv, labels)), conv)
    return labels


async def labels_of(s: object, conversation_id: int) -> list[str]:
    from sqlalchemy.ext.asyncio import AsyncSession

    assert isinstance(s, AsyncSession)
    return list(
        (
            await s.scalars(
                select(Label.name)
                .join(ConversationLabel, ConversationLabel.label_id == Label.id)
                .where(ConversationLabel.conversation_id == conversation_id)
            )
        ).all()
    )


async def do_ensure_label(tx: Tx, workspace_id: int, name: str, color: str) -> int:
    """The id of the workspace's label `name`, created with `color` if it does not exist (a
    concurrent creator's row wins)."""
    await tx.session.execute(
        tx.rt.db.insert(Label)
        .values(workspace_id=workspace_id, name=name, color=color)
        .on_conflict_do_nothing(index_elements=["workspace_id", "name"])
    )
    label_id = await tx.session.scalar(
        select(Label.id).where(Label.workspace_id == workspace_id, Label.name == name)
    )
    assert label_id is not None
    return int(label_id)
