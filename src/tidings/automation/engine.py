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

import httpx
import orjson
from sqlalchemy import func, select

from tidings import signing
from tidings.access import Principal
from tidings.actions import gate
from tidings.actions.base import Tx, transaction
from tidings.actions.conversations import check_update_conversation, labels_of
from tidings.actions.gate import choose_route
from tidings.actions.notes import check_add_note
from tidings.actions.templates import check_send_template
from tidings.actions.triage import check_triage
from tidings.automation import hours as bh
from tidings.automation import replies, timers
from tidings.automation.conditions import Facts, evaluate
from tidings.automation.customer import FROM_CUSTOMER, written_by_customer
from tidings.automation.outbox import ORIGIN, TIMED_EVENTS, Origin
from tidings.automation.runs import (
    STALE_RUN_SECONDS,
    RunState,
    finish_run,
    should_execute,
    start_run,
)
from tidings.domain.enums import MessageKind, Queue, Role
from tidings.domain.errors import InvalidInput, NotFound, PolicyRefusal, TidingsError
from tidings.egress import EgressRefused
from tidings.runtime import Runtime
from tidings.serialize import conversation_dict, message_dict, ts
from tidings.storage.models import (
    Agent,
    AutomationEvent,
    AutomationRule,
    CannedReply,
    Channel,
    Contact,
    Conversation,
    Message,
    RuleRun,
)
from tidings.storage.types import utcnow

log = logging.getLogger(__name__)

BATCH = 20
LEASE_SECONDS = STALE_RUN_SECONDS
MAX_ATTEMPTS = 10
IDLE_POLL_SECONDS = 0.5
MAX_RUNS_PER_HOUR = 20
WEBHOOK_TIMEOUT_SECONDS = 10.0


# --- facts -------------------------------------------------------------------------------


async def build_facts(s: Any, conv: Conversation, message: Message | None, at: datetime) -> Facts:
    if message is None or not written_by_customer(message):
        message = await s.scalar(
            select(Message)
            .where(Message.conversation_id == conv.id, FROM_CUSTOMER)
            .order_by(Message.id.desc())
            .limit(1)
        )
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


def describe(action: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """What an action does, as the thread and the log say it ("added label vip")."""
    names = names or {}
    kind = action["type"]
    if kind == "assign_agent":
        return f"assigned {names.get('agent', 'agent ' + str(action['agent_id']))}"
    if kind == "assign_team":
        return f"assigned team {names.get('team', str(action['team_id']))}"
    if kind == "add_label":
        return f"added label {action['name']}"
    if kind == "set_priority":
        return f"set priority {action['priority']}"
    if kind == "snooze":
        if action.get("until") == "next_opening":
            return "snoozed until business hours"
        return f"snoozed for {action['minutes']:g} minutes"
    if kind == "send_canned_reply":
        return f"sent canned reply /{names.get('canned', str(action['canned_reply_id']))}"
    if kind == "send_template":
        return f"sent template {names.get('template', str(action['template_id']))}"
    if kind == "add_note":
        return "added a private note"
    if kind == "webhook":
        return f"called webhook {action['url'][:80]}"
    if kind == "resolve":
        return "resolved the conversation"
    return str(kind)


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


async def _names(s: Any, action: dict[str, Any]) -> dict[str, str]:
    from tidings.storage.models import Team, Template

    kind = action["type"]
    if kind == "assign_agent":
        agent = await s.get(Agent, action["agent_id"])
        return {"agent": agent.name} if agent else {}
    if kind == "assign_team":
        team = await s.get(Team, action["team_id"])
        return {"team": team.name} if team else {}
    if kind == "send_canned_reply":
        canned = await s.get(CannedReply, action["canned_reply_id"])
        return {"canned": canned.short_code} if canned else {}
    if kind == "send_template":
        template = await s.get(Template, action["template_id"])
        return {"template": template.name} if template else {}
    return {}


async def _webhook(
    rt: Runtime, rule: AutomationRule, action: dict[str, Any], conv_id: int, event: str
) -> str:
    async with rt.db.read() as s:
        conv = await s.get_one(Conversation, conv_id)
        last = await s.scalar(
            select(Message)
            .where(Message.conversation_id == conv_id, FROM_CUSTOMER)
            .order_by(Message.id.desc())
            .limit(1)
        )
        labels = await labels_of(s, conv_id)
    body = orjson.dumps(
        {
            "event": "automation.rule",
            "workspace_id": conv.workspace_id,
            "data": {
                "rule": {"id": rule.id, "name": rule.name, "event": event},
                "conversation": conversation_dict(conv, labels),
                "message": message_dict(last) if last is not None else None,
            },
            "created_at": ts(utcnow()),
        }
    )
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Tidings-Webhooks/1",
        "X-Tidings-Event": "automation.rule",
    }
    sealed = action.get("secret_encrypted")
    if sealed:
        headers.update(signing.sign_headers(rt.box.decrypt_str(sealed), body))
    try:
        # A URL an admin typed: through the egress policy, as an outgoing-webhook
        # subscription's (tidings/egress.py), so a rule cannot reach internal services.
        resp, _answer = await rt.egress.post(
            action["url"], content=body, headers=headers, timeout=WEBHOOK_TIMEOUT_SECONDS
        )
    except EgressRefused as exc:
        raise TidingsError(f"webhook refused by the egress policy: {exc.reason}") from None
    except httpx.HTTPError as exc:
        raise TidingsError(f"webhook call failed: {type(exc).__name__}") from None
    if not 200 <= resp.status_code < 300:
        raise TidingsError(f"webhook answered HTTP {resp.status_code}")
    return f"webhook answered HTTP {resp.status_code}"


async def _perform(
    rt: Runtime,
    who: Principal,
    rule: AutomationRule | None,
    action: dict[str, Any],
    conv_id: int,
    event: str,
) -> str | None:
    """Run one action through the matching `actions/` function. Returns a note for the log."""
    kind = action["type"]
    if kind == "assign_agent":
        # The rule's own line (written in the change's transaction) says it and tells the new
        # assignee (actions/notifications.py); a refusal's line replaces it (execute_rule).
        origin = ORIGIN.get()
        if origin is not None:
            origin.narrate_extra = {"event": "assigned", "assignee_id": action["agent_id"]}
        await check_update_conversation(
            rt, who, conv_id, assignee_id=action["agent_id"], assignment_line=False
        )
    elif kind == "assign_team":
        await check_update_conversation(rt, who, conv_id, team_id=action["team_id"])
    elif kind == "add_label":
        async with rt.db.read() as s:
            current = await labels_of(s, conv_id)
        if action["name"] in current:
            return "label already present"
        await check_update_conversation(rt, who, conv_id, labels=[*current, action["name"]])
    elif kind == "set_priority":
        await check_triage(rt, who, conv_id, priority=action["priority"])
    elif kind == "snooze":
        until: datetime | None
        if action.get("until") == "next_opening":
            async with rt.db.read() as s:
                conv = await s.get_one(Conversation, conv_id)
                until = bh.next_opening(await bh.hours_for_inbox(s, conv.inbox_id), utcnow())
            if until is None:
                raise PolicyRefusal(
                    "This inbox has no business hours to snooze until.", code="no_hours"
                )
        else:
            until = utcnow() + timedelta(minutes=float(action["minutes"]))
        await check_triage(rt, who, conv_id, snoozed_until=until)
    elif kind == "send_canned_reply":
        async with rt.db.read() as s:
            canned = await s.get(CannedReply, action["canned_reply_id"])
        if canned is None or canned.workspace_id != who.workspace_id:
            raise NotFound("the canned reply no longer exists")
        await replies.send_text(rt, conv_id, canned.content)
    elif kind == "send_template":
        await check_send_template(
            rt, who, conv_id, action["template_id"], list(action.get("params") or [])
        )
    elif kind == "add_note":
        await check_add_note(rt, who, conv_id, action["text"])
    elif kind == "webhook":
        if rule is None:  # a macro (perform_action); validation already refuses this
            raise InvalidInput("a macro cannot call a webhook; use a rule for that")
        return await _webhook(rt, rule, action, conv_id, event)
    elif kind == "resolve":
        await check_update_conversation(rt, who, conv_id, status="resolved")
    return None


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
    token = ORIGIN.set(origin)
    error: str | None = None
    try:
        done = len(run.results or [])
        for index, action in enumerate(rule.actions or []):
            if index < done:
                continue
            async with rt.db.read() as s:
                what = describe(action, await _names(s, action))
            origin.result = {"index": index, "action": action["type"], "outcome": "ok"}
            origin.result["detail"] = what
            origin.narrate = f"Rule '{rule.name}' {what}"
            try:
                note = await _perform(rt, who, rule, action, conv_id, event)
                if note is not None and origin.result is not None:
                    origin.result["detail"] = f"{what} ({note})"
            except PolicyRefusal as refusal:
                origin.result = {
                    "index": index,
                    "action": action["type"],
                    "outcome": "refused",
                    "code": refusal.code,
                    "detail": refusal.message,
                }
                origin.narrate = (
                    f"Rule '{rule.name}': {gerund(what)[:80]} was refused. {refusal.message}"
                )
                origin.narrate_extra = None
            except TidingsError as exc:
                origin.result = {
                    "index": index,
                    "action": action["type"],
                    "outcome": "failed",
                    "code": exc.code,
                    "detail": exc.message,
                }
                origin.narrate = f"Rule '{rule.name}': {gerund(what)[:80]} failed. {exc.message}"
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
        rows = (
            await s.scalars(
                select(AutomationEvent)
                .where(due)
                .order_by(AutomationEvent.id)
                .limit(BATCH)
                .with_for_update(**rt.db.skip_locked())
            )
        ).all()
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


async def run(rt: Runtime) -> None:
    """The automation worker (one per worker process; safe to run several)."""
    while True:
        try:
            await timers.fire_due(rt)
            handled = await process_batch(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("automation worker failed; retrying")
            await asyncio.sleep(1.0)
            continue
        if handled < BATCH:
            await rt.wait_for_work(Queue.AUTOMATION, IDLE_POLL_SECONDS)


# --- dry run -------------------------------------------------------------------------------


async def dry_run(
    rt: Runtime, who: Principal, rule: dict[str, Any], conversation_id: int
) -> dict[str, Any]:
    """What `rule` would do on a conversation now, changing nothing: each condition's
    verdict and, for each action, whether the policy layer would allow it."""
    from tidings.access import require_conversation

    async with rt.db.read() as s:
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        facts = await build_facts(s, conv, None, utcnow())
        matched, verdicts = evaluate(rule, facts)
        actions = []
        for action in rule["actions"]:
            entry: dict[str, Any] = {
                "action": action["type"],
                "would": describe(action, await _names(s, action)),
                "allowed": True,
            }
            if action["type"] in ("send_canned_reply", "send_template"):
                reason = await _policy_preview(rt, Tx(rt, s), conv, action)
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


async def _policy_preview(
    rt: Runtime, tx: Tx, conv: Conversation, action: dict[str, Any]
) -> str | None:
    s = tx.session
    try:
        if action["type"] == "send_template":
            from tidings.storage.models import Template

            template = await s.get(Template, action["template_id"])
            route = await choose_route(tx, conv, template.channel_id if template else None)
            kind, text = MessageKind.TEMPLATE, "template"
        else:
            canned = await s.get(CannedReply, action["canned_reply_id"])
            route = await choose_route(tx, conv, None)
            kind, text = MessageKind.TEXT, canned.content if canned else ""
        await gate.check_send(s, conv, route, kind, text, person=False)
    except TidingsError as exc:
        return exc.message
    return None


async def perform_action(
    rt: Runtime, who: Principal, action: dict[str, Any], conversation_id: int
) -> str | None:
    """Run one validated action (`rules.validate_rule`'s shape) on a conversation as `who`,
    through the same `actions/` functions a rule uses: the entry point for an agent's macro.
    Webhook actions carry a rule's secret and stay with rules."""
    if action["type"] == "webhook":
        raise InvalidInput("a macro cannot call a webhook; use a rule for that")
    return await _perform(rt, who, None, action, conversation_id, "macro")
