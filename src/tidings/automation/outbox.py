"""The automation outbox: a before-commit hook of the unit of work (`actions.base`).

Every state change already goes through one `Tx` that buffers its live events. Here those
events become `automation_event` rows in the same transaction — a rollback takes them along,
a commit guarantees them — and the automation worker turns them into rule runs. Mapping:

- `message.created` of an inbound customer message → `message.received`;
- `conversation.created` → `conversation.created`;
- `conversation.updated` → `conversation.updated`, unless the same transaction also created a
  customer or outbound message, or an inbound system line (a provider's notice), in that
  conversation (every message touches its conversation;
  "updated" means a person or an API client changed it: status, assignee, labels, priority,
  snooze, or added a note).

Rules must not trigger themselves. While a rule's action runs, `ORIGIN` holds the run: such a
transaction writes no automation events at all; instead it stamps the messages it created
with the run (`extra.automation`, no human sender), narrates the action in the thread as a
system event, and records the action's outcome on the run — all in the action's own
transaction, so an action and its record commit together or not at all.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, or_, select

from tidings.actions.base import Tx, register_before_commit
from tidings.automation.runs import record_action_result, system_event
from tidings.domain.enums import LiveEventType, Queue
from tidings.storage.models import AutomationEvent, AutomationRule, InboxBusinessHours, Message
from tidings.storage.types import utcnow

RULE_EVENTS = (
    "message.received",
    "conversation.created",
    "conversation.updated",
    "window.closing",
    "no_reply",
)
# Timed events are armed from message.received, so that event is needed for them too.
TIMED_EVENTS = ("window.closing", "no_reply")


@dataclass(slots=True)
class Origin:
    """The rule run (or auto-reply) on whose behalf the current transaction runs."""

    workspace_id: int
    conversation_id: int
    run_id: int
    rule_id: int | None
    rule_name: str
    # Set per action by the engine: the thread line and the result to record with it.
    narrate: str | None = None
    # Details the narration line carries beyond the run's stamp (an assignment's assignee).
    narrate_extra: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    results: list[dict[str, Any]] = field(default_factory=list)

    def stamp(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "rule_name": self.rule_name, "run_id": self.run_id}


ORIGIN: ContextVar[Origin | None] = ContextVar("tidings_automation_origin", default=None)


async def before_commit(tx: Tx) -> None:
    """The unit of work's hook (registered below): rule events, or a rule action's record."""
    origin = ORIGIN.get()
    if origin is not None:
        await _record_rule_action(tx, origin)
        return
    await _write_events(tx)


async def _wanted_events(tx: Tx, workspace_ids: set[int]) -> dict[int, set[str]]:
    """Per workspace, the events anything listens to (active rules, auto-replies)."""
    s = tx.session
    wanted: dict[int, set[str]] = {ws: set() for ws in workspace_ids}
    for ws, event in (
        await s.execute(
            select(AutomationRule.workspace_id, AutomationRule.event)
            .where(
                AutomationRule.workspace_id.in_(workspace_ids),
                AutomationRule.active.is_(True),
            )
            .distinct()
        )
    ).all():
        wanted[ws].add("message.received" if event in TIMED_EVENTS else event)
    for (ws,) in (
        await s.execute(
            select(InboxBusinessHours.workspace_id)
            .where(
                InboxBusinessHours.workspace_id.in_(workspace_ids),
                or_(
                    InboxBusinessHours.away_enabled.is_(True),
                    InboxBusinessHours.greeting_enabled.is_(True),
                ),
            )
            .distinct()
        )
    ).all():
        wanted[ws].add("message.received")
    return wanted


async def _write_events(tx: Tx) -> None:
    candidates: list[tuple[int, str, int, int | None]] = []
    touched_by_message: set[int] = set()
    created: set[int] = set()
    for e in tx.events:
        data = e.data
        if e.type == LiveEventType.MESSAGE_CREATED:
            conv_id = int(data["conversation_id"])
            if data.get("kind") == "system" and data.get("direction") == "in":
                # From the customer's side, though nobody wrote it: a provider's notice (the
                # customer changed their WhatsApp id) or a consent change. It touches the
                # conversation as a message does; it is neither a message nor an update.
                touched_by_message.add(conv_id)
                continue
            if data.get("kind") in ("note", "system"):
                continue
            touched_by_message.add(conv_id)
            if data.get("direction") == "in":
                candidates.append((e.workspace_id, "message.received", conv_id, int(data["id"])))
        elif e.type == LiveEventType.CONVERSATION_CREATED:
            created.add(int(data["id"]))
            candidates.append((e.workspace_id, "conversation.created", int(data["id"]), None))
    for e in tx.events:
        if e.type == LiveEventType.CONVERSATION_UPDATED:
            conv_id = int(e.data["id"])
            if conv_id not in touched_by_message and conv_id not in created:
                candidates.append((e.workspace_id, "conversation.updated", conv_id, None))
    if not candidates:
        return
    wanted = await _wanted_events(tx, {c[0] for c in candidates})
    now = utcnow()
    seen: set[tuple[str, int, int | None]] = set()
    rows = []
    for ws, event, conv_id, message_id in candidates:
        if event not in wanted[ws] or (event, conv_id, message_id) in seen:
            continue
        seen.add((event, conv_id, message_id))
        rows.append(
            {
                "workspace_id": ws,
                "event": event,
                "conversation_id": conv_id,
                "message_id": message_id,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    if rows:
        await tx.session.execute(insert(AutomationEvent), rows)
        tx.wake_after_commit(Queue.AUTOMATION)


async def _record_rule_action(tx: Tx, origin: Origin) -> None:
    s = tx.session
    stamp = origin.stamp()
    for e in tx.events:
        if e.type != LiveEventType.MESSAGE_CREATED:
            continue
        message = await s.get(Message, int(e.data["id"]))
        if message is None:
            continue
        # The rule, not the admin whose rights it borrows, sent this.
        message.sender_agent_id = None
        message.extra = {**(message.extra or {}), "automation": stamp}
        e.data["sender_agent_id"] = None
        e.data["extra"] = message.extra
    if origin.narrate:
        await system_event(tx, origin, origin.narrate, origin.narrate_extra)
        origin.narrate = None
    origin.narrate_extra = None
    if origin.result is not None:
        await record_action_result(s, origin.run_id, origin.result)
        origin.results.append(origin.result)
        origin.result = None


# Every process that runs workers or the app imports this module (through the engine), so its
# transactions write rule events.
register_before_commit(before_commit)
