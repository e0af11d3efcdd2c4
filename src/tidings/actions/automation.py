"""Writes of automation settings: rules (validated by `automation.rules.validate_rule`) and an
inbox's business hours and auto-replies (parsed by `automation.hours`). Owners and admins only.
The automation package evaluates and runs rules; what it stores goes through here."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import func, select

from tidings.access import Principal, require_admin, require_inbox, require_own
from tidings.actions.base import inbox_settings, settings_changed, transaction
from tidings.domain.errors import Conflict, InvalidInput
from tidings.runtime import Runtime
from tidings.storage.models import AutomationRule, InboxBusinessHours
from tidings.storage.types import utcnow

MAX_RULES_PER_WORKSPACE = 500


class Ref(NamedTuple):
    """Rows a rule names by id (`automation.kinds.references`): each must be the workspace's."""

    where: str
    model: Any
    ids: list[int]
    missing: str


async def _check_refs(s: Any, workspace_id: int, refs: list[Ref]) -> None:
    for ref in refs:
        found = await s.scalars(
            select(ref.model.id).where(
                ref.model.workspace_id == workspace_id, ref.model.id.in_(ref.ids)
            )
        )
        if set(found.all()) != set(ref.ids):
            raise InvalidInput(f"{ref.where}: {ref.missing}")


def _seal_secrets(
    rt: Runtime, actions: list[dict[str, Any]], previous: list[Any]
) -> list[dict[str, Any]]:
    """Secrets (a webhook's signing secret) are write-only: encrypted at rest, never returned.
    An update that omits the secret keeps the one stored for the same kind and URL."""
    kept = {
        (a.get("type"), a.get("url")): a["secret_encrypted"]
        for a in previous
        if isinstance(a, dict) and "secret_encrypted" in a
    }
    out = []
    for a in actions:
        a = dict(a)
        secret = a.pop("secret", None)
        if secret is not None:
            a["secret_encrypted"] = rt.box.encrypt(secret)
        elif (a["type"], a.get("url")) in kept:
            a["secret_encrypted"] = kept[(a["type"], a.get("url"))]
        out.append(a)
    return out


async def check_save_rule(
    rt: Runtime,
    who: Principal,
    rule: dict[str, Any],
    refs: list[Ref],
    position: Any = None,
    rule_id: int | None = None,
) -> AutomationRule:
    """Create (`rule_id` None) or replace a rule. Precondition: `rule` is what
    `automation.rules.validate_rule` returned, its actions vetted (`kinds.vet_actions`), and
    `refs` the rows it names; `position` is the raw value asked for, if any."""
    require_admin(who)
    if position is not None and (
        not isinstance(position, int) or isinstance(position, bool) or not 0 <= position <= 100_000
    ):
        raise InvalidInput("position: a number from 0 to 100000")
    async with transaction(rt) as tx:
        s = tx.session
        await _check_refs(s, who.workspace_id, refs)
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
            row = await require_own(s, who, AutomationRule, rule_id, "rule")
        fields = dict(rule)
        row.actions = _seal_secrets(rt, fields.pop("actions"), list(row.actions or []))
        for key, value in fields.items():
            setattr(row, key, value)
        row.updated_at = now
        if position is not None:
            row.position = position
        await s.flush()
        settings_changed(tx, who, "automation_rules")
        return row


async def check_delete_rule(rt: Runtime, who: Principal, rule_id: int) -> None:
    require_admin(who)
    async with transaction(rt) as tx:
        await tx.session.delete(await require_own(tx.session, who, AutomationRule, rule_id, "rule"))
        settings_changed(tx, who, "automation_rules")


async def check_set_business_hours(
    rt: Runtime, who: Principal, inbox_id: int, fields: dict[str, Any]
) -> InboxBusinessHours:
    """Store an inbox's hours and auto-replies. Precondition: `fields` are validated columns of
    `InboxBusinessHours` (timezone, weekly, holidays, away_*, greeting_*)."""
    require_admin(who)
    async with transaction(rt) as tx:
        row = await inbox_settings(tx, who, InboxBusinessHours, inbox_id)
        for key, value in fields.items():
            setattr(row, key, value)
        row.updated_at = utcnow()
        await tx.session.flush()
        settings_changed(tx, who, "business_hours")
        return row


async def check_delete_business_hours(rt: Runtime, who: Principal, inbox_id: int) -> None:
    require_admin(who)
    async with transaction(rt) as tx:
        await require_inbox(tx.session, who, inbox_id)
        row = await tx.session.get(InboxBusinessHours, inbox_id)
        if row is not None:
            await tx.session.delete(row)
        settings_changed(tx, who, "business_hours")
