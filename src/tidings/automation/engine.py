"""The automation worker: claims `automation_event` rows, evaluates the workspace's rules and
runs their actions — each through the same `actions/` function and policy checks a person
would use — then logs every run.

Delivery is at-least-once: an event is leased while it is processed and comes back if the
worker dies. Runs are idempotent on (rule, event): the `rule_run` row is unique on that key
and records each action's outcome in the action's own transaction (see `outbox.Origin`), so a
redelivered event resumes after the last recorded action instead of repeating the run. (An
action with an outside effect that is not a transaction of ours — the webhook call — may
repeat if the process dies between the call and its record.)

Loops: changes made by a rule carry its run as origin and write no automation events, so a
rule never triggers itself or another rule. A rule that is re-triggered from outside (its
webhook makes someone change the conversation) is capped at MAX_RUNS_PER_HOUR runs per
conversation; further runs are logged as skipped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from tidings.access import Principal, require_conversation
from tidings.actions.base import Tx, transaction
from tidings.actions.conversations import labels_of
from tidings.automation import hours as bh
from tidings.automation import replies, timers
from tidings.automation.customer import last_from_customer, written_by_customer
from tidings.automation.kinds import ACTIONS, Facts, Step, describe, evaluate
from tidings.automation.outbox import ORIGIN, TIMED_EVENTS, Origin
from tidings.automation.runs import (
    STALE_RUN_SECONDS,
    RunState,
    failed_result,
    finish_run,
    should_execute,
    start_run,
)
from tidings.domain.enums import Queue, Role
from tidings.domain.errors import InvalidInput, NotFound, PolicyRefusal, TidingsError
from tidings.runtime import Runtime
from tidings.storage.models import (
    Agent,
    AutomationEvent,
    AutomationRule,
    Channel,
    Contact,
    Conversation,
    Message,
    RuleRun,
)
from tidings.storage.types import utcnow
from tidings.workers.loop import poll

log = logging.getLogger(__name__)

BATCH = 20
LEASE_SECONDS = STALE_RUN_SECONDS
MAX_ATTEMPTS = 10
IDLE_POLL_SECONDS = 0.5
MAX_RUNS_PER_HOUR = 20


# --- facts -------------------------------------------------------------------------------


async def build_facts(s: Any, conv: Conversation, message: Message | None, at: datetime) -> Facts:
    if message is None or not written_by_customer(message):
        message = await last_from_customer(s, conv.id)
    channel_id = message.channel_id if message is not None else conv.last_channel_id
    kind = (
        await s.scalar(select(Channel.kind).where(Channel.id == channel_id)) if channel_id else None
    )
    contact = await s.get(Contact, conv.contact_id)
    return Facts(
        workspace_id=conv.workspace_id,
        conversation_id=conv.id,
        inbox_id=conv.inbox_id,
        channel_kind=kind,
        text=message.body if message is not None else None,
        contact_attributes=dict(contact.attributes or {}) if contact else {},
        labels=set(await labels_of(s, conv.id)),
        inside_hours=bh.is_open(await bh.hours_for_inbox(s, conv.inbox_id), at),
    )


async def rule_principal(s: Any, workspace_id: int, rule: AutomationRule | None) -> Principal:
    """Rules act with an admin's rights over their workspace (an admin wrote them); the
    messages they create name no agent (`outbox` stamps them with the run instead)."""
    agent_id = None
    if rule is not None and rule.created_by is not None:
        agent_id = await s.scalar(
            select(Agent.id).where(Agent.id == rule.created_by, Agent.workspace_id == workspace_id)
        )
    if agent_id is None:
        agent_id = await s.scalar(
            select(Agent.id)
            .where(Agent.workspace_id == workspace_id, Agent.role.in_(("owner", "admin")))
            .order_by(Agent.id)
            .limit(1)
        )
    if agent_id is None:
        raise NotFound("this workspace has no admin for rules to act as")
    return Principal(workspace_id, int(agent_id), Role.ADMIN, frozenset())


# --- actions -----------------------------------------------------------------------------


GERUND = {
    "added": "adding",
    "assigned": "assigning",
    "set": "setting",
    "snoozed": "snoozing",
    "sent": "sending",
    "called": "calling",
    "resolved": "resolving",
}


def gerund(what: str) -> str:
    """ "sent canned reply /x" → "sending canned reply /x" (for refusals and failures)."""
    verb, _, rest = what.partition(" ")
    return f"{GERUND.get(verb, verb)} {rest}".strip()


async def _flush_record(rt: Runtime) -> None:
    """Record what `ORIGIN` holds in a transaction of its own (the action wrote none)."""
    async with transaction(rt):
        pass


async def execute_rule(
    rt: Runtime, rule: AutomationRule, run: RuleRun, conv_id: int, event: str
) -> None:
    async with rt.db.read() as s:
        who = await rule_principal(s, rule.workspace_id, rule)
    origin = Origin(rule.workspace_id, conv_id, run.id, rule.id, rule.name)
    step = Step(rt, who, conv_id, rule, event)
    token = ORIGIN.set(origin)
    error: str | None = None
    try:
        done = len(run.results or [])
        for index, action in enumerate(rule.actions or []):
            if index < done:
                continue
            async with rt.db.read() as s:
                what = await describe(s, action)
            origin.result = {"index": index, "action": action["type"], "outcome": "ok"}
            origin.result["detail"] = what
            origin.narrate = f"Rule '{rule.name}' {what}"
            try:
                note = await ACTIONS[action["type"]].run(step, action)
                if note is not None and origin.result is not None:
                    origin.result["detail"] = f"{what} ({note})"
            except TidingsError as exc:  # refused by policy, or failed: logged, the run goes on
                origin.result = failed_result(index, action["type"], exc)
                said = "was refused" if isinstance(exc, PolicyRefusal) else "failed"
                origin.narrate = f"Rule '{rule.name}': {gerund(what)[:80]} {said}. {exc.message}"
                origin.narrate_extra = None
            if origin.result is not None:
                await _flush_record(rt)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        ORIGIN.reset(token)
        if error is None:
            async with rt.db.write() as s:
                await finish_run(s, run.id)


async def _run_rule(
    rt: Runtime, rule: AutomationRule, ev: AutomationEvent, conv: Conversation
) -> None:
    now = utcnow()
    async with transaction(rt) as tx:
        recent = await tx.session.scalar(
            select(func.count())
            .select_from(RuleRun)
            .where(
                RuleRun.rule_id == rule.id,
                RuleRun.conversation_id == conv.id,
                RuleRun.created_at > now - timedelta(hours=1),
                RuleRun.state != RunState.SKIPPED,
            )
        )
        capped = (recent or 0) >= MAX_RUNS_PER_HOUR
        run, created = await start_run(
            tx,
            workspace_id=conv.workspace_id,
            conversation_id=conv.id,
            dedupe_key=f"rule:{rule.id}:event:{ev.id}",
            rule_id=rule.id,
            rule_name=rule.name,
            kind="rule",
            event=ev.event,
            event_id=ev.id,
            state=RunState.SKIPPED if capped else RunState.RUNNING,
            error=(
                f"loop protection: this rule already ran {MAX_RUNS_PER_HOUR} times on this "
                "conversation in the last hour"
                if capped
                else None
            ),
        )
    if should_execute(run, created):
        await execute_rule(rt, rule, run, conv.id, ev.event)


async def process_event(rt: Runtime, event_id: int) -> None:
    async with rt.db.read() as s:
        ev = await s.get(AutomationEvent, event_id)
        if ev is None:
            return
        conv = await s.get(Conversation, ev.conversation_id)
        message = await s.get(Message, ev.message_id) if ev.message_id else None
        query = select(AutomationRule).where(
            AutomationRule.workspace_id == ev.workspace_id, AutomationRule.active.is_(True)
        )
        if ev.rule_id is not None:
            query = query.where(AutomationRule.id == ev.rule_id)
        else:
            query = query.where(AutomationRule.event == ev.event)
        rules = list(
            (await s.scalars(query.order_by(AutomationRule.position, AutomationRule.id))).all()
        )
        at = message.sent_at if message is not None and ev.event == "message.received" else None
        at = min(at, utcnow()) if at is not None else utcnow()
        facts = await build_facts(s, conv, message, at) if conv is not None else None
    if conv is None or facts is None or (ev.message_id is not None and message is None):
        # Gone since (deleted), or never committed: an ingest event whose savepoint rolled
        # back still had its live events buffered.
        return
    if ev.event == "message.received" and message is not None:
        await timers.arm(rt, conv, message)
        await replies.run_auto_replies(rt, conv, message, ev.id, at)
    for rule in rules:
        if rule.event in TIMED_EVENTS and ev.rule_id is None:
            continue
        matched, _verdicts = evaluate(rule, facts)
        if matched:
            await _run_rule(rt, rule, ev, conv)


# --- the worker ----------------------------------------------------------------------------


async def _claim(rt: Runtime) -> list[int]:
    now = utcnow()
    due = (AutomationEvent.state == "pending") & (AutomationEvent.next_attempt_at <= now)
    if not await rt.db.has_rows(select(AutomationEvent.id).where(due)):
        return []
    async with rt.db.write() as s:
        rows = await rt.db.claim(s, AutomationEvent, due, (AutomationEvent.id,), BATCH)
        for row in rows:
            row.attempts += 1
            # A lease: if this process dies the event comes back (at-least-once).
            row.next_attempt_at = now + timedelta(seconds=LEASE_SECONDS)
        return [row.id for row in rows]


async def _settle(rt: Runtime, event_id: int, error: str | None) -> None:
    async with rt.db.write() as s:
        row = await s.get_one(AutomationEvent, event_id)
        row.last_error = error
        if error is None:
            row.state, row.processed_at = "done", utcnow()
        elif row.attempts >= MAX_ATTEMPTS:
            row.state = "failed"
        else:
            delay = min(600.0, 2.0**row.attempts) * random.uniform(0.75, 1.25)
            row.next_attempt_at = utcnow() + timedelta(seconds=delay)


async def process_batch(rt: Runtime) -> int:
    ids = await _claim(rt)
    for event_id in ids:
        # Renew the lease: the batch's earlier events may have taken a while (webhooks).
        async with rt.db.write() as s:
            row = await s.get_one(AutomationEvent, event_id)
            row.next_attempt_at = utcnow() + timedelta(seconds=LEASE_SECONDS)
        try:
            await process_event(rt, event_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("automation event %s failed: %s", event_id, exc, exc_info=True)
            await _settle(rt, event_id, f"{type(exc).__name__}: {exc}"[:2000])
            continue
        await _settle(rt, event_id, None)
    return len(ids)


async def _step(rt: Runtime) -> bool:
    await timers.fire_due(rt)
    return await process_batch(rt) >= BATCH


async def run(rt: Runtime) -> None:
    """The automation worker (one per worker process; safe to run several)."""
    await poll(rt, _step, queue=Queue.AUTOMATION, idle=IDLE_POLL_SECONDS, what="automation worker")


# --- dry run -------------------------------------------------------------------------------


async def dry_run(
    rt: Runtime, who: Principal, rule: dict[str, Any], conversation_id: int
) -> dict[str, Any]:
    """What `rule` would do on a conversation now, changing nothing: each condition's
    verdict and, for each action, whether the policy layer would allow it."""
    async with rt.db.read() as s:
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        facts = await build_facts(s, conv, None, utcnow())
        matched, verdicts = evaluate(rule, facts)
        actions = []
        for action in rule["actions"]:
            entry: dict[str, Any] = {
                "action": action["type"],
                "would": await describe(s, action),
                "allowed": True,
            }
            reason = await ACTIONS[action["type"]].preview(Tx(rt, s), conv, action)
            if reason is not None:
                entry["allowed"], entry["reason"] = False, reason
            actions.append(entry)
    return {
        "matched": matched,
        "language": facts.language,
        "inside_business_hours": facts.inside_hours,
        "conditions": verdicts,
        "actions": actions,
    }


async def perform_action(
    rt: Runtime, who: Principal, action: dict[str, Any], conversation_id: int
) -> str | None:
    """Run one validated action (`rules.validate_rule`'s shape) on a conversation as `who`,
    through the same `actions/` functions a rule uses: the entry point for an agent's macro.
    Kinds a macro may not use (a webhook carries a rule's secret) stay with rules."""
    if not ACTIONS[action["type"]].macro:
        raise InvalidInput(f"a macro cannot use {action['type']}; use a rule for that")
    return await ACTIONS[action["type"]].run(Step(rt, who, conversation_id, None, "macro"), action)
