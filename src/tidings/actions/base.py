"""The unit of work: one transaction plus the side effects it releases after commit."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import orjson
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.access import Principal, require_inbox
from tidings.actions import notifications
from tidings.domain import live_events
from tidings.domain.enums import LiveEventType, Queue
from tidings.domain.errors import InvalidInput
from tidings.domain.live_events import LivePayload
from tidings.realtime.bus import LiveEvent
from tidings.runtime import Runtime
from tidings.serialize import ts
from tidings.storage.models import AuditLog, Contact, WebhookDelivery, WebhookSubscription
from tidings.storage.types import utcnow

log = logging.getLogger(__name__)
RowT = TypeVar("RowT")

# Event types an outgoing-webhook subscription may ask for.
WEBHOOK_EVENTS = (
    LiveEventType.MESSAGE_CREATED,
    LiveEventType.MESSAGE_UPDATED,
    LiveEventType.CONVERSATION_CREATED,
    LiveEventType.CONVERSATION_UPDATED,
)


# Called with the transaction just before it commits, in registration order: a feature that
# must write something in the same transaction as any change (automation's rule events) adds
# its hook here, so the unit of work knows no feature by name.
BeforeCommit = Callable[["Tx"], Awaitable[None]]
BEFORE_COMMIT: list[BeforeCommit] = []


def register_before_commit(hook: BeforeCommit) -> None:
    if hook not in BEFORE_COMMIT:
        BEFORE_COMMIT.append(hook)


class Tx:
    def __init__(self, rt: Runtime, session: AsyncSession) -> None:
        self.rt = rt
        self.session = session
        self.events: list[LiveEvent] = []
        self.wakes: set[str] = set()

    def emit(
        self,
        event: LivePayload,
        workspace_id: int,
        inbox_id: int | None,
        inbox_ids: tuple[int, ...] = (),
    ) -> None:
        """Queue a live event (and outgoing webhooks) for after commit: `event` is a typed
        payload of `domain.live_events` (`live_events.MESSAGE_CREATED(message_dict(m))`). Who
        receives it live is decided by its type (`access.EVENT_AUDIENCE`) from `inbox_id` and
        `inbox_ids`."""
        self.events.append(LiveEvent(event.type, workspace_id, inbox_id, event.data, "", inbox_ids))

    def emit_for(self, event: LivePayload, row: Any) -> None:
        """`emit` to the inbox of `row` (a conversation, or any row with `workspace_id` and
        `inbox_id`: a channel, a survey)."""
        self.emit(event, row.workspace_id, row.inbox_id)

    def wake_after_commit(self, queue: str) -> None:
        """`queue`: a `Queue`; its worker is woken once the transaction has committed."""
        self.wakes.add(queue)

    async def _write_webhook_outbox(self) -> None:
        """Outgoing webhooks are rows written in the same transaction as the change they
        announce (an outbox): a rollback takes them with it, a commit guarantees them."""
        relevant = [e for e in self.events if e.type in WEBHOOK_EVENTS]
        # The status path sends the UI one `messages.updated` for a conversation with several
        # messages moved in a batch (actions/statuses.py); integrators keep their documented
        # one `message.updated` per message.
        relevant += [
            dataclasses.replace(e, type=LiveEventType.MESSAGE_UPDATED, data=m)
            for e in self.events
            if e.type == LiveEventType.MESSAGES_UPDATED
            for m in e.data["messages"]
        ]
        if not relevant:
            return
        workspaces = {e.workspace_id for e in relevant}
        subs = (
            await self.session.execute(
                select(
                    WebhookSubscription.id,
                    WebhookSubscription.workspace_id,
                    WebhookSubscription.events,
                ).where(
                    WebhookSubscription.workspace_id.in_(workspaces),
                    WebhookSubscription.active.is_(True),
                )
            )
        ).all()
        if not subs:
            return
        now = utcnow()
        rows = []
        for event in relevant:
            body: str | None = None
            for sub_id, ws_id, wanted in subs:
                if ws_id != event.workspace_id or event.type not in (wanted or []):
                    continue
                if body is None:
                    body = orjson.dumps(
                        {
                            "event": event.type,
                            "workspace_id": event.workspace_id,
                            "data": event.data,
                            "created_at": ts(now),
                        }
                    ).decode()
                rows.append(
                    {
                        "workspace_id": ws_id,
                        "subscription_id": sub_id,
                        "event_type": event.type,
                        "payload": body,
                        "state": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                )
        if rows:
            await self.session.execute(insert(WebhookDelivery), rows)
            self.wakes.add(Queue.WEBHOOKS)


@asynccontextmanager
async def transaction(rt: Runtime) -> AsyncIterator[Tx]:
    async with rt.db.write() as session:
        tx = Tx(rt, session)
        yield tx
        # The hooks first (automation's rule events: a rule run's narration adds events), then
        # the outgoing webhooks for every event.
        for hook in BEFORE_COMMIT:
            await hook(tx)
        # Then the agents' notifications, which read the events the rules' narration added.
        await notifications.before_commit(tx)
        await tx._write_webhook_outbox()
    # Committed: now, and only now, tell the world. A bus failure must not turn a committed
    # change into an error for the caller; clients resync on reconnect.
    try:
        await rt.bus.publish(tx.events)
    except Exception:
        log.exception("publishing %d live events failed", len(tx.events))
    for queue in tx.wakes:
        rt.wake(queue)


def audit(
    tx: Tx,
    who: Principal,
    action: str,
    target_type: str,
    target_id: int | None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """An audit log row for a change `who` made, written in the transaction."""
    return audit_as(tx, who.workspace_id, who.agent_id, action, target_type, target_id, details)


def audit_as(
    tx: Tx,
    workspace_id: int,
    actor_agent_id: int | None,
    action: str,
    target_type: str,
    target_id: int | None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """An audit log row with the actor given (None: the system or the command line)."""
    row = AuditLog(
        workspace_id=workspace_id,
        actor_agent_id=actor_agent_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details or {},
        created_at=utcnow(),
    )
    tx.session.add(row)
    return row


def settings_changed(tx: Tx, who: Principal, what: str) -> None:
    """`what` of the workspace's settings changed ("labels", "sla"...). Inbox None: every agent
    of the workspace may hear it."""
    tx.emit(live_events.SETTINGS_UPDATED({"what": what}), who.workspace_id, None)


async def lock_contacts(tx: Tx, contact_ids: Iterable[int]) -> None:
    """Lock the contacts' rows, in id order so that two lockers cannot deadlock (PostgreSQL;
    SQLite has a single writer). Ingest locks the contact row before it touches the contact's
    conversation, and so does everything else that creates, resolves or rates one: a resolve
    cannot deadlock with a reply arriving at that moment (both would otherwise lock the
    conversation row and the reports' per-conversation mark in opposite orders), a rating sent
    just after the resolve sees the committed survey, and conversation creation is serialised
    per contact across workers."""
    if not tx.rt.db.is_sqlite:
        await tx.session.execute(
            select(Contact.id)
            .where(Contact.id.in_(sorted(set(contact_ids))))
            .order_by(Contact.id)
            .with_for_update()
        )


async def inbox_settings(
    tx: Tx, who: Principal, model: type[RowT], inbox_id: int, **defaults: Any
) -> RowT:
    """An inbox's settings row of `model` (keyed by the inbox id) for `who` to change, created
    with `defaults` when the inbox has none yet; NotFound for an inbox `who` cannot see."""
    await require_inbox(tx.session, who, inbox_id)
    row = await tx.session.get(model, inbox_id)
    if row is None:
        row = cast(Any, model)(inbox_id=inbox_id, workspace_id=who.workspace_id, **defaults)
        tx.session.add(row)
    return row


async def require_own_ids(
    tx: Tx, who: Principal, model: Any, ids: Sequence[int], field: str, noun: str
) -> None:
    """Every id in `ids` names a row of `model` in `who`'s workspace; else InvalidInput
    "`field`: no `noun` N in this workspace" for the first that does not."""
    found = set(
        (
            await tx.session.scalars(
                select(model.id).where(model.id.in_(ids), model.workspace_id == who.workspace_id)
            )
        ).all()
    )
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInput(f"{field}: no {noun} {missing[0]} in this workspace")
