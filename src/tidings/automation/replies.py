"""Messages a rule or an auto-reply sends, and the auto-replies themselves.

An automated text goes through the same route choice and policy checks as an agent's reply
(`gate.choose_route`, `gate.check_send`: empty/too long, service window, consent, SMS
segments) and the same `do_queue_message`. Two differences, both deliberate: the Human
Agent tag is never used (Meta allows it only for a person's reply), and the conversation keeps
its unread count (an away message must not mark the customer's message as read).

Auto-replies, per inbox (`InboxBusinessHours`): the away message outside business hours, at
most once per conversation per closed period (the period is named by the next opening), and a
greeting on a contact's first message ever, once per contact. Each is a `rule_run` (kind
`away` / `greeting`) whose unique key makes it happen once however often the event is seen.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from tidings.actions.base import transaction
from tidings.actions.gate import choose_route
from tidings.actions.outbound import do_send
from tidings.automation import hours as bh
from tidings.automation.customer import FROM_CUSTOMER
from tidings.automation.outbox import ORIGIN, Origin
from tidings.automation.runs import failed_result, finish_run, should_execute, start_run
from tidings.domain.enums import MessageKind
from tidings.domain.errors import TidingsError
from tidings.runtime import Runtime
from tidings.storage.models import (
    Conversation,
    InboxBusinessHours,
    Message,
)


async def send_text(rt: Runtime, conversation_id: int, text: str) -> Message:
    """Queue `text` into the conversation as automation (see the module docstring)."""
    async with transaction(rt) as tx:
        s = tx.session
        # Locked: the unread count is kept as it is below, and an inbound message being
        # stored meanwhile must not have its increment overwritten (PostgreSQL).
        conv = (
            await s.scalars(
                select(Conversation)
                .where(Conversation.id == conversation_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).one()
        route = await choose_route(tx, conv, None)
        return await do_send(
            tx, conv, route, MessageKind.TEXT, text, sender_agent_id=None, keep_unread=True
        )


async def _auto_reply(
    rt: Runtime,
    conv: Conversation,
    event_id: int,
    kind: str,
    name: str,
    dedupe_key: str,
    text: str,
) -> None:
    async with transaction(rt) as tx:
        run, created = await start_run(
            tx,
            workspace_id=conv.workspace_id,
            conversation_id=conv.id,
            dedupe_key=dedupe_key,
            rule_id=None,
            rule_name=name,
            kind=kind,
            event="message.received",
            event_id=event_id,
        )
    if not should_execute(run, created):
        return
    origin = Origin(conv.workspace_id, conv.id, run.id, None, name)
    token = ORIGIN.set(origin)
    try:
        if not run.results:
            origin.result = {"index": 0, "action": "send_text", "outcome": "ok", "detail": "sent"}
            try:
                await send_text(rt, conv.id, text)
            except TidingsError as exc:
                origin.result = failed_result(0, "send_text", exc)
                origin.narrate = f"{name} not sent: {exc.message}"
                async with transaction(rt):
                    pass
    finally:
        ORIGIN.reset(token)
    async with rt.db.write() as s:
        await finish_run(s, run.id)


async def run_auto_replies(
    rt: Runtime, conv: Conversation, message: Message, event_id: int, at: datetime
) -> None:
    """Greeting and away message for one inbound customer message (idempotent)."""
    async with rt.db.read() as s:
        row = await s.get(InboxBusinessHours, conv.inbox_id)
        if row is None or not (row.away_enabled or row.greeting_enabled):
            return
        earlier_conversation = await s.scalar(
            select(Conversation.id)
            .where(Conversation.contact_id == conv.contact_id, Conversation.id < conv.id)
            .limit(1)
        )
        earlier_inbound = await s.scalar(
            select(func.count())
            .select_from(Message)
            .where(
                Message.conversation_id == conv.id,
                FROM_CUSTOMER,
                Message.id < message.id,
            )
        )
    hours = bh.from_row(row)
    first_contact = earlier_conversation is None and not earlier_inbound
    if row.greeting_enabled and row.greeting_message and first_contact:
        await _auto_reply(
            rt,
            conv,
            event_id,
            "greeting",
            "Greeting",
            f"greeting:contact:{conv.contact_id}",
            row.greeting_message,
        )
    if row.away_enabled and row.away_message and not bh.is_open(hours, at):
        opening = bh.next_opening(hours, at)
        period = opening.isoformat() if opening else "never"
        await _auto_reply(
            rt,
            conv,
            event_id,
            "away",
            "Away message",
            f"away:conversation:{conv.id}:{period}",
            row.away_message,
        )
