"""Rule definitions: what a rule (or a macro) may say, validated before it is stored.

A rule is `{name, active, event, minutes?, match, conditions, actions}`:

- `event`: message.received | conversation.created | conversation.updated | window.closing |
  no_reply. The timed two take `minutes`: window.closing fires N minutes before a channel's
  service window closes; no_reply fires when no agent has answered a customer message for N
  minutes.
- `conditions` (all must hold, or any with `match: "any"`; each may carry `negate: true`) and
  `actions` (run in order): each `{type, ...parameters}` of a kind registered in
  `automation/kinds.py`, which validates, describes and runs it.
"""

from __future__ import annotations

from typing import Any

from tidings.automation.kinds import (
    ACTIONS,
    minutes,
    show_action,
    text,
    validate,
)
from tidings.automation.outbox import RULE_EVENTS, TIMED_EVENTS
from tidings.domain.errors import InvalidInput
from tidings.serialize import ts
from tidings.storage.models import AutomationRule

MAX_CONDITIONS = 20
MAX_ACTIONS = 20
MAX_TIMER_MINUTES = 7 * 24 * 60
# Fractions of a minute are accepted (the tests use seconds); 3 s is the floor.
MIN_TIMER_MINUTES = 0.05


def validate_rule(raw: Any) -> dict[str, Any]:
    """The rule as stored (ids not yet checked against the workspace: `kinds.references`)."""
    if not isinstance(raw, dict):
        raise InvalidInput("a rule is a JSON object")
    name = text(raw.get("name"), "name")
    event = raw.get("event")
    if event not in RULE_EVENTS:
        raise InvalidInput(f"event: one of {', '.join(RULE_EVENTS)}")
    params: dict[str, Any] = {}
    if event in TIMED_EVENTS:
        params["minutes"] = minutes(
            raw.get("minutes"), "minutes", MIN_TIMER_MINUTES, MAX_TIMER_MINUTES
        )
    match = raw.get("match", "all")
    if match not in ("all", "any"):
        raise InvalidInput("match: all or any")
    conditions = raw.get("conditions") or []
    if not isinstance(conditions, list) or len(conditions) > MAX_CONDITIONS:
        raise InvalidInput(f"conditions: a list of up to {MAX_CONDITIONS}")
    actions = raw.get("actions")
    if not isinstance(actions, list) or not actions or len(actions) > MAX_ACTIONS:
        raise InvalidInput(f"actions: a list of 1 to {MAX_ACTIONS}")
    active = raw.get("active", True)
    if not isinstance(active, bool):
        raise InvalidInput("active: true or false")
    return {
        "name": name,
        "active": active,
        "event": event,
        "event_params": params,
        "match": match,
        "conditions": [validate("conditions", c, i) for i, c in enumerate(conditions)],
        "actions": [validate("actions", a, i) for i, a in enumerate(actions)],
    }


def rule_dict(rule: AutomationRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "active": rule.active,
        "event": rule.event,
        "minutes": (rule.event_params or {}).get("minutes"),
        "match": rule.match,
        "conditions": rule.conditions or [],
        "actions": [show_action(a) for a in rule.actions or []],
        "position": rule.position,
        "created_at": ts(rule.created_at),
        "updated_at": ts(rule.updated_at),
    }


def validate_macro_actions(raw: list[Any]) -> list[dict[str, Any]]:
    """A macro's actions: validated as a rule's, less the kinds a macro may not use."""
    if not isinstance(raw, list) or not raw or len(raw) > MAX_ACTIONS:
        raise InvalidInput(f"actions: a list of 1 to {MAX_ACTIONS}")
    checked = [validate("actions", a, i) for i, a in enumerate(raw)]
    refused = [a["type"] for a in checked if not ACTIONS[a["type"]].macro]
    if refused:
        raise InvalidInput(f"actions: a macro cannot use {refused[0]}; use a rule for that")
    return checked
