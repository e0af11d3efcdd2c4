"""Writes of automation settings: rules (validated by `automation.rules.validate_rule`) and an
inbox's business hours and auto-replies (parsed by `automation.hours`). Owners and admins only.
The automation package evaluates and runs rules; what it stores goes through here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from tidings.access import Principal, require_admin, require_inbox
from tidings.actions.base import transaction
from tidings.domain.errors import Conflict, InvalidInput, NotFound
from tidings.egress import EgressRefused
from tidings.runtime import Runtime
from tidings.storage.models import (
    Agent,
    AutomationRule,
    CannedReply,
    Inbox,
    InboxBusinessHours,
    Team,
    Template,
)
from tidings.storage.types import utcnow

MAX_RULES_PER_WORKSPACE = 500


async def _check_refs(s: Any, workspace_id: int, rule: dict[str, Any]) -> None:
    """Every id a rule names must belong to its workspace."""
    for i, c in enumerate(rule["conditions"]):
        if c["type"] == "inbox":
            found = set(
                (
                    await s.scalars(
                        select(Inbox.id).where(
                            Inbox.workspace_id == workspace_id, Inbox.id.in_(c["values"])
                        )
                    )
                ).all()
            )
            if found != set(c["values"]):
                raise InvalidInput(f"conditions[{i}].values: no such inbox in this workspace")
    models: dict[str, tuple[str, Any]] = {
        "assign_agent": ("agent_id", Agent),
        "assign_team": ("team_id", Team),
        "send_canned_reply": ("canned_reply_id", CannedReply),
        "send_template": ("template_id", Template),
    }
    for i, a in enumerate(rule["actions"]):
        if a["type"] in models:
            key, model = models[a["type"]]
            row = await s.get(model, a[key])
            if row is None or row.workspace_id != workspace_id:
                raise InvalidInput(f"actions[{i}].{key}: not found in this workspace")


def _seal_secrets(
    rt: Runtime, actions: list[dict[str, Any]], previous: list[Any]
) -> list[dict[str, Any]]:
    """Webhook secrets are write-only: encrypted at rest, never returned. An update that omits
    the secret keeps the one stored for the same URL."""
    kept = {
        a.get("url"): a["secret_encrypted"]
        for a in previous
        if isinstance(a, dict) and a.get("type") == "webhook" and "secret_encrypted" in a
    }
    out = []
    for a in actions:
        if a["type"] == "webhook":
            a = dict(a)
            secret = a.pop("secret", None)
            if secret is not None:
                a["secret_encrypted"] = rt.box.encrypt(secret)
            elif a["url"] in kept:
                a["secret_encrypted"] = kept[a["url"]]
        out.append(a)
    return out


async def check_save_rule(
    rt: Runtime,
    who: Principal,
    rule: dict[str, Any],
    position: Any = None,
    rule_id: int | None = None,
) -> AutomationRule:
    """Create (`rule_id` None) or replace a rule. Precondition: `rule` is what
    `automation.rules.validate_rule` returned; `position` is the raw value asked for, if any."""
    require_admin(who)
    if position is not None and (
        not isinstance(position, int) or isinstance(position, bool) or not 0 <= position <= 100_000
    ):
        raise InvalidInput("position: a number from 0 to 100000")
    for i, action in enumerate(rule["actions"]):
        if action["type"] == "webhook":
            try:
                await rt.egress.policy.check_destination(action["url"])
            except EgressRefused as exc:
                raise InvalidInput(f"actions[{i}].url: {exc}") from None
    async with transaction(rt) as tx:
        s = tx.session
        await _check_refs(s, who.workspace_id, rule)
        clash = await s.scalar(
            select(AutomationRule.id).where(
                AutomationRule.workspace_id == who.workspace_id,
                AutomationRule.name == rule["name"],
            )
        )
        if clash is not None and clash != rule_id:
            raise Conflict(f"name: a rule {rule['name']!r} already exists")
        now = utcnow()
        if rule_id is None:
            count = await s.scalar(
                select(func.count())
                .select_from(AutomationRule)
                .where(AutomationRule.workspace_id == who.workspace_id)
            )
            if (count or 0) >= MAX_RULES_PER_WORKSPACE:
                raise InvalidInput(f"a workspace may have up to {MAX_RULES_PER_WORKSPACE} rules")
            row = AutomationRule(
                workspace_id=who.workspace_id,
                created_by=who.agent_id,
                created_at=now,
                position=int(count or 0),
                actions=[],
            )
            s.add(row)
        else:
            found = await s.get(AutomationRule, rule_id)
            if found is None or found.workspace_id != who.workspace_id:
                raise NotFound("rule not found")
            row = found
        fields = dict(rule)
        row.actions = _seal_secrets(rt, fields.pop("actions"), list(row.actions or []))
        for key, value in fields.items():
            setattr(row, key, value)
        row.updated_at = now
        if position is not None:
            row.position = position
        await s.flush()
        tx.emit("settings.updated", who.workspace_id, None, {"what": "automation_rules"})
        return row


async def check_delete_rule(rt: Runtime, who: Principal, rule_id: int) -> None:
    require_admin(who)
    async with transaction(rt) as tx:
        row = await tx.session.get(AutomationRule, rule_id)
        if row is None or row.workspace_id != who.workspace_id:
            raise NotFound("rule not found")
        await tx.session.delete(row)
        tx.emit("settings.updated", who.workspace_id, None, {"what": "automation_rules"})


async def check_set_business_hours(
    rt: Runtime, who: Principal, inbox_id: int, fields: dict[str, Any]
) -> InboxBusinessHours:
    """Store an inbox's hours and auto-replies. Precondition: `fields` are validated columns of
    `InboxBusinessHours` (timezone, weekly, holidays, away_*, greeting_*)."""
    require_admin(who)
    async with transaction(rt) as tx:
        s = tx.session
        await require_inbox(s, who, inbox_id)
        row = await s.get(InboxBusinessHours, inbox_id)
        if row is None:
            row = InboxBusinessHours(inbox_id=inbox_id, workspace_id=who.workspace_id)
            s.add(row)
        for key, value in fields.items():
            setattr(row, key, value)
        row.updated_at = utcnow()
        await s.flush()
        tx.emit("settings.updated", who.workspace_id, None, {"what": "business_hours"})
        return row


async def check_delete_business_hours(rt: Runtime, who: Principal, inbox_id: int) -> None:
    require_admin(who)
    async with transaction(rt) as tx:
        await require_inbox(tx.session, who, inbox_id)
        row = await tx.session.get(InboxBusinessHours, inbox_id)
        if row is not None:
            await tx.session.delete(row)
        tx.emit("settings.updated", who.workspace_id, None, {"what": "business_hours"})
