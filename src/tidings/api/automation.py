"""Automation API: rules (CRUD, dry run), their run log, and business hours per inbox.

    GET/POST          /api/v1/automation/rules
    GET/PUT/DELETE    /api/v1/automation/rules/{id}
    POST              /api/v1/automation/rules/test   (dry run: rule or rule_id, conversation_id)
    GET               /api/v1/automation/runs?conversation_id=&rule_id=&limit=
    GET               /api/v1/automation/kinds   (the registered condition and action kinds)
    GET/PUT/DELETE    /api/v1/inboxes/{id}/business_hours
    GET               /api/v1/timezones   (the IANA zones business hours may be in)

Rules and hours are for owners and admins; an agent may read the runs of a conversation they
can see. Bad input is a 4xx with `{"error": {"code", "message"}}` naming the field.
"""

from __future__ import annotations

import zoneinfo
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from tidings.access import (
    Principal,
    require_admin,
    require_conversation,
    require_inbox,
    require_own,
)
from tidings.actions.automation import (
    check_delete_business_hours,
    check_delete_rule,
    check_save_rule,
    check_set_business_hours,
)
from tidings.api.deps import RT, Who
from tidings.api.queries import workspace_rows
from tidings.automation import engine, kinds
from tidings.automation import hours as bh
from tidings.automation.rules import rule_dict, validate_rule
from tidings.automation.runs import run_dict
from tidings.domain.errors import InvalidInput
from tidings.runtime import Runtime
from tidings.serialize import ts
from tidings.storage.models import (
    AutomationRule,
    Conversation,
    InboxBusinessHours,
    RuleRun,
)
from tidings.storage.types import utcnow

router = APIRouter(prefix="/api/v1", tags=["automation"])
JSONBody = Annotated[Any, Body()]
MAX_AUTO_REPLY_LENGTH = 4096


# --- answers ----------------------------------------------------------------------------------


class RuleOut(BaseModel):
    id: int
    name: str
    active: bool
    event: str
    minutes: int | float | None = Field(description="Timed events: minutes after the event")
    match: str = Field(description="all | any")
    # Conditions and actions are registered kinds, each with its own fields (webhook actions
    # show `has_secret`, never the secret).
    conditions: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    position: int
    created_at: str | None
    updated_at: str | None


class RulePage(BaseModel):
    data: list[RuleOut]


class RunOut(BaseModel):
    id: int
    rule_id: int | None
    rule_name: str
    kind: str
    conversation_id: int
    event: str
    event_id: int | None
    state: str
    results: list[dict[str, Any]] = Field(description="What each action did")
    error: str | None
    created_at: str | None
    finished_at: str | None


class RunPage(BaseModel):
    data: list[RunOut]


class ConditionVerdictOut(BaseModel):
    condition: dict[str, Any] = Field(description="The condition as written in the rule")
    matched: bool
    detail: str


class ActionVerdictOut(BaseModel):
    action: str
    would: str = Field(description="What the action would do, in words")
    allowed: bool
    reason: str | None = Field(default=None, description="Only when not allowed: why")


class DryRunOut(BaseModel):
    matched: bool
    language: str | None
    inside_business_hours: bool
    conditions: list[ConditionVerdictOut]
    actions: list[ActionVerdictOut]


class KindOut(BaseModel):
    type: str
    label: str = Field(description="What Settings offers, in words")
    macro: bool | None = Field(default=None, description="Actions: whether a macro may use it")


class KindsOut(BaseModel):
    conditions: list[KindOut]
    actions: list[KindOut]


@router.get("/automation/kinds", response_model=KindsOut, response_model_exclude_none=True)
async def list_kinds(who: Who) -> dict[str, Any]:
    """The condition and action kinds a rule may use (`automation/kinds.py`), for the rule and
    macro builders: what the API accepts is exactly what is listed here."""
    return kinds.catalog()


@router.get("/automation/rules", response_model=RulePage)
async def list_rules(who: Who, rt: RT) -> dict[str, Any]:
    require_admin(who)
    async with rt.db.read() as s:
        rows = await workspace_rows(
            s, AutomationRule, who.workspace_id, AutomationRule.position, AutomationRule.id
        )
    return {"data": [rule_dict(r) for r in rows]}


@router.post("/automation/rules", status_code=201, response_model=RuleOut)
async def create_rule(body: JSONBody, who: Who, rt: RT) -> dict[str, Any]:
    return rule_dict(await _save(rt, who, body))


async def _save(rt: Runtime, who: Principal, body: Any, rule_id: int | None = None) -> Any:
    require_admin(who)
    position = body.get("position") if isinstance(body, dict) else None
    rule = validate_rule(body)
    await kinds.vet_actions(rt, rule["actions"])
    return await check_save_rule(rt, who, rule, kinds.references(rule), position, rule_id)


async def _rule(rt: Runtime, who: Principal, rule_id: int) -> AutomationRule:
    require_admin(who)
    async with rt.db.read() as s:
        return await require_own(s, who, AutomationRule, rule_id, "rule")


@router.get("/automation/rules/{rule_id}", response_model=RuleOut)
async def get_rule(rule_id: int, who: Who, rt: RT) -> dict[str, Any]:
    return rule_dict(await _rule(rt, who, rule_id))


@router.put("/automation/rules/{rule_id}", response_model=RuleOut)
async def update_rule(rule_id: int, body: JSONBody, who: Who, rt: RT) -> dict[str, Any]:
    return rule_dict(await _save(rt, who, body, rule_id))


@router.delete("/automation/rules/{rule_id}", status_code=204)
async def delete_rule(rule_id: int, who: Who, rt: RT) -> None:
    await check_delete_rule(rt, who, rule_id)


@router.post("/automation/rules/test", response_model=DryRunOut, response_model_exclude_unset=True)
async def test_rule(body: JSONBody, who: Who, rt: RT) -> dict[str, Any]:
    """Dry run: what a rule (saved, or as drafted in the builder) would do on a conversation
    now. Nothing is changed and nothing is sent."""
    require_admin(who)
    if not isinstance(body, dict):
        raise InvalidInput('body: {"rule": {...} or "rule_id": 1, "conversation_id": 1}')
    conv_id = body.get("conversation_id")
    if not isinstance(conv_id, int) or isinstance(conv_id, bool) or not 0 < conv_id < 2**53:
        raise InvalidInput("conversation_id: the conversation to test against")
    if body.get("rule_id") is not None:
        row = await _rule(rt, who, kinds.an_id(body["rule_id"], "rule_id"))
        rule = {"match": row.match, "conditions": row.conditions, "actions": row.actions}
    else:
        rule = validate_rule(body.get("rule"))
    return await engine.dry_run(rt, who, rule, conv_id)


@router.get("/automation/runs", response_model=RunPage)
async def list_runs(
    who: Who,
    rt: RT,
    conversation_id: Annotated[int | None, Query(ge=1, lt=2**53)] = None,
    rule_id: Annotated[int | None, Query(ge=1, lt=2**53)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    async with rt.db.read() as s:
        if conversation_id is not None:
            require_conversation(who, await s.get(Conversation, conversation_id))
        else:
            require_admin(who)
        query = select(RuleRun).where(RuleRun.workspace_id == who.workspace_id)
        if conversation_id is not None:
            query = query.where(RuleRun.conversation_id == conversation_id)
        if rule_id is not None:
            query = query.where(RuleRun.rule_id == rule_id)
        rows = (await s.scalars(query.order_by(RuleRun.id.desc()).limit(limit))).all()
    return {"data": [run_dict(r) for r in rows]}


# --- business hours ------------------------------------------------------------------------


def _hours_dict(inbox_id: int, row: InboxBusinessHours | None) -> dict[str, Any]:
    hours = bh.from_row(row)
    base = (
        hours.as_json()
        if hours
        else {"timezone": "UTC", "weekly": {d: [] for d in bh.WEEKDAYS}, "holidays": []}
    )
    return {
        "inbox_id": inbox_id,
        "configured": row is not None,
        **base,
        "away_enabled": bool(row and row.away_enabled),
        "away_message": row.away_message if row else None,
        "greeting_enabled": bool(row and row.greeting_enabled),
        "greeting_message": row.greeting_message if row else None,
        "open_now": bh.is_open(hours, utcnow()),
        "next_opening": ts(bh.next_opening(hours, utcnow())) if hours else None,
        "updated_at": ts(row.updated_at) if row else None,
    }


class BusinessHoursOut(BaseModel):
    inbox_id: int
    configured: bool
    timezone: str = Field(description="IANA zone the hours are in")
    weekly: dict[str, list[list[str]]] = Field(description='{"mon": [["09:00", "17:00"]], ...}')
    holidays: list[str] = Field(description="Closed dates (YYYY-MM-DD)")
    away_enabled: bool
    away_message: str | None
    greeting_enabled: bool
    greeting_message: str | None
    open_now: bool
    next_opening: str | None
    updated_at: str | None


def _message(body: dict[str, Any], key: str, enabled: bool) -> str | None:
    value = body.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if enabled:
            raise InvalidInput(f"{key}: the text to send when it is enabled")
        return None
    if not isinstance(value, str) or len(value) > MAX_AUTO_REPLY_LENGTH or "\x00" in value:
        raise InvalidInput(f"{key}: text of up to {MAX_AUTO_REPLY_LENGTH} characters")
    return value.strip()


@router.get("/inboxes/{inbox_id}/business_hours", response_model=BusinessHoursOut)
async def get_business_hours(inbox_id: int, who: Who, rt: RT) -> dict[str, Any]:
    require_admin(who)
    async with rt.db.read() as s:
        await require_inbox(s, who, inbox_id)
        return _hours_dict(inbox_id, await s.get(InboxBusinessHours, inbox_id))


@router.put("/inboxes/{inbox_id}/business_hours", response_model=BusinessHoursOut)
async def put_business_hours(inbox_id: int, body: JSONBody, who: Who, rt: RT) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput("body: {timezone, weekly, holidays, away_*, greeting_*}")
    unknown = set(body) - {
        "timezone",
        "weekly",
        "holidays",
        "away_enabled",
        "away_message",
        "greeting_enabled",
        "greeting_message",
    }
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))[:200]}")
    hours = bh.parse_hours(
        body.get("timezone", "UTC"), body.get("weekly") or {}, body.get("holidays")
    )
    fields = hours.as_json()  # timezone, weekly, holidays
    for key in ("away_enabled", "greeting_enabled"):
        fields[key] = body.get(key, False)
        if not isinstance(fields[key], bool):
            raise InvalidInput(f"{key}: true or false")
    for kind in ("away", "greeting"):
        fields[f"{kind}_message"] = _message(body, f"{kind}_message", fields[f"{kind}_enabled"])
    return _hours_dict(inbox_id, await check_set_business_hours(rt, who, inbox_id, fields))


@router.delete("/inboxes/{inbox_id}/business_hours", status_code=204)
async def delete_business_hours(inbox_id: int, who: Who, rt: RT) -> None:
    await check_delete_business_hours(rt, who, inbox_id)


@lru_cache(maxsize=1)
def _zones() -> list[str]:
    return sorted(z for z in zoneinfo.available_timezones() if "/" in z or z == "UTC")


@router.get("/timezones", response_model=list[str])
async def timezones(who: Who) -> list[str]:
    """IANA time-zone names this server knows (for business hours)."""
    return _zones()
