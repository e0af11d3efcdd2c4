"""Notifications for agents: a mention in a note, a conversation assigned to them (by someone
else or by auto-assignment), a customer's reply in a conversation assigned to them.

Nothing calls this per feature: `before_commit` reads the live events the unit of work is about
to publish (the note's `message.created` with `extra.mentions`, the system line of an
assignment, a customer's message) and writes the rows in the same transaction, so every writer
(agents, bulk, rules, auto-assignment, ingest) notifies alike and a rollback takes the
notification with it. Each row is announced live as `notification.created`, which only its
agent receives (`access.Audience.AGENT`). A message notifies an agent of one kind at most once
(the database's unique key): replaying an event cannot notify twice. An agent who turned a kind
off on their profile (`preferences["notify"]`) gets no row of that kind at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, exists, or_, select, update

from tidings.access import agents_seeing_conversations
from tidings.domain import live_events
from tidings.serialize import ts
from tidings.storage.models import Agent, Conversation, Message, Notification
from tidings.storage.types import utcnow

if TYPE_CHECKING:
    from tidings.actions.base import Tx
    from tidings.runtime import Runtime

KINDS = ("mention", "assigned", "reply")
# System lines that hand a conversation to someone (api/ui.py triage, actions/assignment.py).
ASSIGN_EVENTS = frozenset({"assigned", "auto_assigned"})
# Customer messages that are not worth a notification on their own.
QUIET_KINDS = frozenset({"system", "note", "reaction"})
BODY_MAX = 300
# What the bell and the browser tell an agent about (the profile page); all on by default.
NOTIFY_KEYS = ("mentions", "assigned", "replies", "desktop", "sound")
# The profile switch that governs each notification kind.
PREFERENCE_OF_KIND = {"mention": "mentions", "assigned": "assigned", "reply": "replies"}


def preferences_of(agent: Agent) -> dict[str, bool]:
    return notify_preferences(agent.preferences)


def notify_preferences(stored: dict[str, Any] | None) -> dict[str, bool]:
    raw = (stored or {}).get("notify")
    notify: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return {k: bool(notify.get(k, True)) for k in NOTIFY_KEYS}


def notification_dict(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "agent_id": n.agent_id,
        "kind": n.kind,
        "conversation_id": n.conversation_id,
        "message_id": n.message_id,
        "actor_agent_id": n.actor_agent_id,
        "body": n.body,
        "created_at": ts(n.created_at),
        "read_at": ts(n.read_at),
    }


def _wanted(events: Sequence[Any]) -> list[tuple[str, int, int, dict[str, Any]]]:
    """(kind, agent or 0 for "the assignee", workspace, message) for each event that
    notifies; the assignee of a replied-to conversation is looked up afterwards."""
    out: list[tuple[str, int, int, dict[str, Any]]] = []
    for e in events:
        if e.type != "message.created":
            continue
        m = e.data
        sender = m.get("sender_agent_id")
        extra = m.get("extra") or {}
        if m.get("kind") == "note":
            for agent_id in extra.get("mentions") or []:
                if agent_id != sender:
                    out.append(("mention", int(agent_id), e.workspace_id, m))
        elif m.get("kind") == "system" and extra.get("event") in ASSIGN_EVENTS:
            target = extra.get("assignee_id")
            if isinstance(target, int) and target != sender:
                out.append(("assigned", target, e.workspace_id, m))
        elif m.get("direction") == "in" and m.get("kind") not in QUIET_KINDS:
            out.append(("reply", 0, e.workspace_id, m))
    return out


async def before_commit(tx: Tx) -> None:
    wanted = _wanted(tx.events)
    if not wanted:
        return
    s = tx.session
    replied = {m["conversation_id"] for kind, _, _, m in wanted if kind == "reply"}
    assignees: dict[int, int | None] = {}
    if replied:
        rows = await s.execute(
            select(Conversation.id, Conversation.assignee_id).where(Conversation.id.in_(replied))
        )
        assignees = {cid: aid for cid, aid in rows.all()}
    resolved = [
        (kind, assignees.get(m["conversation_id"]) or 0 if kind == "reply" else agent_id, ws, m)
        for kind, agent_id, ws, m in wanted
    ]
    # Only agents who may see the conversation hear of it (a mention of a colleague outside
    # the inbox tells them nothing).
    allowed = await agents_seeing_conversations(
        s, {(a, m["conversation_id"]) for _, a, _, m in resolved if a}
    )
    prefs = {
        agent_id: notify_preferences(stored)
        for agent_id, stored in (
            await s.execute(
                select(Agent.id, Agent.preferences).where(Agent.id.in_({a for a, _ in allowed}))
            )
        ).all()
    }
    now = utcnow()
    seen: set[tuple[int, str, int]] = set()
    for kind, agent_id, workspace_id, m in resolved:
        if (agent_id, m["conversation_id"]) not in allowed or (agent_id, kind, m["id"]) in seen:
            continue
        if not prefs.get(agent_id, {}).get(PREFERENCE_OF_KIND[kind], True):
            continue
        seen.add((agent_id, kind, m["id"]))
        body = m.get("body") or ""
        if kind == "reply" and not body and m.get("attachments"):
            body = f"[{m['attachments'][0].get('kind') or 'attachment'}]"
        row = Notification(
            workspace_id=workspace_id,
            agent_id=agent_id,
            kind=kind,
            conversation_id=m["conversation_id"],
            message_id=m["id"],
            actor_agent_id=m.get("sender_agent_id"),
            body=body[:BODY_MAX] or None,
            created_at=now,
        )
        s.add(row)
        await s.flush()
        tx.emit(live_events.NOTIFICATION_CREATED(notification_dict(row)), workspace_id, None)


async def check_mark_read(
    rt: Runtime, agent_id: int, ids: list[int] | None, conversation_id: int | None = None
) -> int:
    """Mark the agent's notifications read: these ids, those of one conversation, or all.
    Only the agent's own rows change; returns how many did."""
    from tidings.actions.base import transaction

    async with transaction(rt) as tx:
        q = update(Notification).where(
            Notification.agent_id == agent_id, Notification.read_at.is_(None)
        )
        if ids is not None:
            q = q.where(Notification.id.in_(ids))
        if conversation_id is not None:
            q = q.where(Notification.conversation_id == conversation_id)
        result = await tx.session.execute(q.values(read_at=utcnow()))
        return int(getattr(result, "rowcount", 0) or 0)


def mentioned(agent_id: int) -> ColumnElement[bool]:
    """The list's "Mentions" view: conversations where a note mentioned the agent."""
    return exists().where(
        Notification.agent_id == agent_id,
        Notification.kind == "mention",
        Notification.conversation_id == Conversation.id,
    )


def participating(agent_id: int) -> ColumnElement[bool]:
    """The list's "Participating" view: assigned to the agent, written in by them (a reply or
    a note), or mentioning them."""
    return or_(
        Conversation.assignee_id == agent_id,
        exists().where(
            Message.conversation_id == Conversation.id, Message.sender_agent_id == agent_id
        ),
        mentioned(agent_id),
    )
