"""Who gets a conversation: per-inbox auto-assignment, agent availability and the queue.

Modes (`inbox_assignment.mode`):

- `off`: nothing automatic (the default).
- `round_robin`: the next online member after the one who got the last conversation.
- `least_busy`: the online member with the fewest open conversations in the inbox.
- `manual`: conversations wait in the queue until an agent takes the oldest one.

Both automatic modes respect capacity (open conversations per agent in the inbox: the agent's
own `agent_capacity` row, else the inbox's `capacity`, else no limit). When every online
member is full, or nobody is online, a conversation stays unassigned: it is *queued*, and the
queue is drained oldest first as soon as capacity frees (a resolve, an unassign, an agent
coming online) and by the periodic sweep (`tidings.workers.assignment`).

The queue is the database itself (open, unassigned conversations of an auto-mode inbox), so
assignment is a durable step: the transaction that creates, reopens or frees a conversation
only wakes the assignment worker after commit; a crash before the drain loses nothing, the
next sweep assigns. One drain per inbox at a time: it locks the inbox's `inbox_assignment` row
(PostgreSQL; SQLite has a single writer), always before any conversation row, so drains,
takes and offline releases cannot deadlock with each other.

Other features (automation rules) may call `do_drain(tx, inbox_id)` or `drain(rt, inbox_id)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from tidings.access import Principal, require_admin, require_inbox, require_own
from tidings.actions.base import Tx, require_own_ids, settings_changed, transaction
from tidings.actions.conversations import do_announce
from tidings.actions.system_line import do_system_line
from tidings.domain import live_events
from tidings.domain.enums import (
    ConversationStatus,
    Queue,
)
from tidings.domain.errors import Conflict, InvalidInput
from tidings.runtime import Runtime
from tidings.serialize import ts
from tidings.storage.models import (
    Agent,
    AgentCapacity,
    Conversation,
    InboxAssignment,
    InboxMember,
)
from tidings.storage.types import utcnow

MODES = ("off", "round_robin", "least_busy", "manual")
AUTO_MODES = ("round_robin", "least_busy")
AVAILABILITY = ("online", "away", "offline")
# Conversations assigned per drain transaction (a large backlog drains over several).
DRAIN_BATCH = 50
MAX_CAPACITY = 1000


# --- settings -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssignmentSettings:
    inbox_id: int
    mode: str
    capacity: int | None
    agent_capacities: dict[int, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "inbox_id": self.inbox_id,
            "mode": self.mode,
            "capacity": self.capacity,
            "agent_capacities": {str(k): v for k, v in sorted(self.agent_capacities.items())},
        }


async def read_settings(s: Any, inbox_id: int) -> AssignmentSettings:
    row = await s.get(InboxAssignment, inbox_id)
    caps = dict(
        (
            await s.execute(
                select(AgentCapacity.agent_id, AgentCapacity.capacity).where(
                    AgentCapacity.inbox_id == inbox_id
                )
            )
        ).all()
    )
    return AssignmentSettings(
        inbox_id, row.mode if row else "off", row.capacity if row else None, caps
    )


async def check_get_settings(rt: Runtime, who: Principal, inbox_id: int) -> AssignmentSettings:
    async with rt.db.read() as s:
        await require_inbox(s, who, inbox_id)
        return await read_settings(s, inbox_id)


def _capacity(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CAPACITY:
        raise InvalidInput(f"{field}: a whole number from 1 to {MAX_CAPACITY}, or null")
    return value


async def check_set_settings(
    rt: Runtime,
    who: Principal,
    inbox_id: int,
    *,
    mode: str | None = None,
    capacity: int | object | None = ...,
    agent_capacities: dict[str, int | None] | None = None,
) -> AssignmentSettings:
    """Change an inbox's mode, capacity (null: no limit) and per-agent capacities
    (`{agent_id: n}`; null removes the agent's own capacity)."""
    require_admin(who)
    if mode is not None and mode not in MODES:
        raise InvalidInput(f"mode: one of {', '.join(MODES)}")
    async with transaction(rt) as tx:
        s = tx.session
        await require_inbox(s, who, inbox_id)
        row = await _lock_settings(tx, inbox_id)
        if row is None:
            row = InboxAssignment(
                inbox_id=inbox_id, workspace_id=who.workspace_id, mode="off", updated_at=utcnow()
            )
            s.add(row)
        if mode is not None:
            row.mode = mode
        if capacity is not ...:
            row.capacity = _capacity(capacity, "capacity")
        for key, value in (agent_capacities or {}).items():
            if not (str(key).isascii() and str(key).isdigit()):
                raise InvalidInput("agent_capacities: keys are agent ids")
            agent_id = int(key)
            await require_own_ids(tx, who, Agent, [agent_id], "agent_capacities", "agent")
            existing = await s.get(AgentCapacity, (inbox_id, agent_id))
            cap = _capacity(value, f"agent_capacities.{agent_id}")
            if cap is None:
                if existing is not None:
                    await s.delete(existing)
            elif existing is None:
                s.add(AgentCapacity(inbox_id=inbox_id, agent_id=agent_id, capacity=cap))
            else:
                existing.capacity = cap
        row.updated_at = utcnow()
        await s.flush()
        settings_changed(tx, who, "assignment")
        # A new mode or more room may assign queued conversations at once.
        tx.wake_after_commit(Queue.ASSIGNMENT)
        return await read_settings(s, inbox_id)


async def _lock_settings(tx: Tx, inbox_id: int) -> InboxAssignment | None:
    q = select(InboxAssignment).where(InboxAssignment.inbox_id == inbox_id)
    if not tx.rt.db.is_sqlite:
        q = q.with_for_update()
    row: InboxAssignment | None = await tx.session.scalar(q)
    return row


# --- load and the choice of agent -------------------------------------------------------------


async def loads(s: Any, inbox_id: int, agent_ids: list[int]) -> dict[int, int]:
    """Open conversations each agent holds in the inbox."""
    counts = dict(
        (
            await s.execute(
                select(Conversation.assignee_id, func.count())
                .where(
                    Conversation.inbox_id == inbox_id,
                    Conversation.assignee_id.in_(agent_ids),
                    Conversation.status == ConversationStatus.OPEN,
                )
                .group_by(Conversation.assignee_id)
            )
        ).all()
    )
    return {a: int(counts.get(a, 0)) for a in agent_ids}


async def online_members(s: Any, inbox_id: int) -> list[int]:
    return list(
        (
            await s.scalars(
                select(Agent.id)
                .join(InboxMember, InboxMember.agent_id == Agent.id)
                .where(
                    InboxMember.inbox_id == inbox_id,
                    Agent.active.is_(True),
                    Agent.availability == "online",
                )
                .order_by(Agent.id)
            )
        ).all()
    )


def pick(
    mode: str,
    agents: list[int],
    load: dict[int, int],
    capacity: dict[int, int | None],
    last_agent_id: int | None,
) -> int | None:
    """The agent for the next conversation, or None when everyone is full. `agents` in id
    order; the rotation starts after `last_agent_id` (ties in least_busy rotate too)."""
    if not agents:
        return None
    rotation = agents
    if last_agent_id is not None:
        rotation = [a for a in agents if a > last_agent_id] + [
            a for a in agents if a <= last_agent_id
        ]
    room = [a for a in rotation if capacity[a] is None or load[a] < (capacity[a] or 0)]
    if not room:
        return None
    if mode == "least_busy":
        return min(room, key=lambda a: load[a])  # min keeps the first of equals: rotation order
    return room[0]


async def _announce(tx: Tx, conv: Conversation) -> None:
    conv.updated_at = utcnow()
    await tx.session.flush()
    await do_announce(tx, conv)


def queue_query(inbox_id: Any) -> Any:
    """The inbox's queue: open, unassigned conversations, oldest first. `inbox_id`: an id, or
    the column of an outer query (the sweep's inboxes with a queue)."""
    return (
        select(Conversation)
        .where(
            Conversation.inbox_id == inbox_id,
            Conversation.assignee_id.is_(None),
            Conversation.status == ConversationStatus.OPEN,
        )
        .order_by(Conversation.created_at, Conversation.id)
    )


async def do_drain(tx: Tx, inbox_id: int, limit: int = DRAIN_BATCH) -> list[tuple[int, int]]:
    """Assign queued conversations of an auto-mode inbox while an online member has room.
    Returns (conversation id, agent id) pairs, in the order assigned."""
    s = tx.session
    row = await _lock_settings(tx, inbox_id)
    if row is None or row.mode not in AUTO_MODES:
        return []
    agents = await online_members(s, inbox_id)
    if not agents:
        return []
    settings = await read_settings(s, inbox_id)
    capacity = {a: settings.agent_capacities.get(a, row.capacity) for a in agents}
    load = await loads(s, inbox_id, agents)
    names = dict((await s.execute(select(Agent.id, Agent.name).where(Agent.id.in_(agents)))).all())
    done: list[tuple[int, int]] = []
    # SKIP LOCKED: a conversation an agent is taking at this moment is theirs, not ours.
    queued = queue_query(inbox_id).limit(limit).with_for_update(**tx.rt.db.skip_locked())
    for conv in (await s.scalars(queued)).all():
        agent_id = pick(row.mode, agents, load, capacity, row.last_agent_id)
        if agent_id is None:
            break
        conv.assignee_id = agent_id
        load[agent_id] += 1
        row.last_agent_id = agent_id
        how = "round robin" if row.mode == "round_robin" else "least busy"
        await do_system_line(
            tx,
            conv,
            f"Assigned to {names.get(agent_id, agent_id)} ({how})",
            {"event": "auto_assigned", "assignee_id": agent_id, "mode": row.mode},
        )
        await _announce(tx, conv)
        done.append((conv.id, agent_id))
    return done


async def drain(rt: Runtime, inbox_id: int) -> list[tuple[int, int]]:
    """`do_drain` in its own transaction."""
    async with transaction(rt) as tx:
        return await do_drain(tx, inbox_id)


async def drain_all(rt: Runtime) -> int:
    """Drain every auto-mode inbox that has a queue (the sweep and the woken worker)."""
    async with rt.db.read() as s:
        waiting = (
            queue_query(InboxAssignment.inbox_id)
            .with_only_columns(Conversation.id)
            .order_by(None)
            .exists()
        )
        inbox_ids = list(
            (
                await s.scalars(
                    select(InboxAssignment.inbox_id).where(
                        InboxAssignment.mode.in_(AUTO_MODES), waiting
                    )
                )
            ).all()
        )
    assigned = 0
    for inbox_id in inbox_ids:
        while True:
            done = await drain(rt, inbox_id)
            assigned += len(done)
            if len(done) < DRAIN_BATCH:
                break
    return assigned


def after_change(tx: Tx) -> None:
    """A conversation was created, reopened, unassigned or resolved: the queue may move."""
    tx.wake_after_commit(Queue.ASSIGNMENT)


# --- take from the queue ----------------------------------------------------------------------


async def queue_size(rt: Runtime, who: Principal, inbox_id: int) -> dict[str, Any]:
    async with rt.db.read() as s:
        await require_inbox(s, who, inbox_id)
        settings = await read_settings(s, inbox_id)
        waiting = await s.scalar(
            queue_query(inbox_id).with_only_columns(func.count()).order_by(None)
        )
        oldest = await s.scalar(queue_query(inbox_id).limit(1))
    return {
        "inbox_id": inbox_id,
        "mode": settings.mode,
        "waiting": int(waiting or 0),
        "oldest_created_at": ts(oldest.created_at) if oldest else None,
    }


async def check_take_next(rt: Runtime, who: Principal, inbox_id: int) -> Conversation | None:
    """Assign the oldest waiting conversation of the inbox to `who`; None when the queue is
    empty. Two agents never get the same one: PostgreSQL claims it with FOR UPDATE SKIP
    LOCKED (a concurrent take skips the locked row and gets the next); SQLite has one writer."""
    async with transaction(rt) as tx:
        s = tx.session
        await require_inbox(s, who, inbox_id)
        settings = await read_settings(s, inbox_id)
        room = settings.agent_capacities.get(who.agent_id, settings.capacity)
        if room is not None:
            held = (await loads(s, inbox_id, [who.agent_id]))[who.agent_id]
            if held >= room:
                raise Conflict(
                    f"You already have {held} open conversations here (your capacity is {room}).",
                    code="at_capacity",
                )
        conv: Conversation | None = await s.scalar(
            queue_query(inbox_id).limit(1).with_for_update(**rt.db.skip_locked())
        )
        if conv is None:
            return None
        conv.assignee_id = who.agent_id
        me = await s.get_one(Agent, who.agent_id)
        await do_system_line(
            tx,
            conv,
            f"{me.name} took this from the queue",
            {"event": "taken", "assignee_id": who.agent_id},
        )
        await _announce(tx, conv)
        return conv


# --- availability -----------------------------------------------------------------------------


async def check_set_availability(
    rt: Runtime, who: Principal, agent_id: int, availability: str
) -> Agent:
    """An agent sets their own availability (admins anyone's). `offline` returns the agent's
    open conversations in auto and manual inboxes to the queue, from where the drain hands
    them to online colleagues; `online` may take queued conversations at once."""
    if availability not in AVAILABILITY:
        raise InvalidInput(f"availability: one of {', '.join(AVAILABILITY)}")
    if agent_id != who.agent_id:
        require_admin(who)
    async with transaction(rt) as tx:
        s = tx.session
        agent = await require_own(s, who, Agent, agent_id, "agent")
        before = agent.availability
        agent.availability = availability
        await s.flush()
        if availability == "offline" and before != "offline":
            await _release(tx, agent)
        tx.emit(
            live_events.AGENT_AVAILABILITY({"agent_id": agent.id, "availability": availability}),
            agent.workspace_id,
            None,
        )
        tx.wake_after_commit(Queue.ASSIGNMENT)
        return agent


async def _release(tx: Tx, agent: Agent) -> None:
    s = tx.session
    inbox_ids = list(
        (
            await s.scalars(
                select(InboxAssignment.inbox_id)
                .join(InboxMember, InboxMember.inbox_id == InboxAssignment.inbox_id)
                .where(
                    InboxMember.agent_id == agent.id,
                    InboxAssignment.mode.in_((*AUTO_MODES, "manual")),
                )
                .order_by(InboxAssignment.inbox_id)
            )
        ).all()
    )
    for inbox_id in inbox_ids:
        await _lock_settings(tx, inbox_id)  # the drain's lock order: settings row first
        convs = (
            await s.scalars(
                select(Conversation)
                .where(
                    Conversation.inbox_id == inbox_id,
                    Conversation.assignee_id == agent.id,
                    Conversation.status == ConversationStatus.OPEN,
                )
                .order_by(Conversation.id)
            )
        ).all()
        for conv in convs:
            conv.assignee_id = None
            await do_system_line(
                tx,
                conv,
                f"Back in the queue: {agent.name} went offline",
                {"event": "released", "agent_id": agent.id},
            )
            await _announce(tx, conv)
        # Reassign in the same transaction where the inbox assigns automatically.
        await do_drain(tx, inbox_id)
