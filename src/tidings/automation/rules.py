"""Rule definitions: what a rule may say, validated before it is stored, and saving them.

A rule is `{name, active, event, minutes?, match, conditions, actions}`:

- `event`: message.received | conversation.created | conversation.updated | window.closing |
  no_reply. The timed two take `minutes`: window.closing fires N minutes before a channel's
  service window closes; no_reply fires when no agent has answered a customer message for N
  minutes.
- `conditions` (all must hold, or any with `match: "any"`; each may carry `negate: true`):
  channel_kind {values}, inbox {values}, text_contains {values}, text_matches {pattern},
  contact_attribute {key, value}, label {name}, business_hours {inside}, language {values}.
- `actions`, run in order: assign_agent {agent_id}, assign_team {team_id}, add_label {name},
  set_priority {priority}, snooze {minutes | until: "next_opening"}, send_canned_reply
  {canned_reply_id}, send_template {template_id, params}, add_note {text}, webhook {url,
  secret}, resolve {}.
"""

from __future__ import annotations

import math
from typing import Any

import regex

from tidings.actions.triage import PRIORITIES
from tidings.automation.outbox import RULE_EVENTS, TIMED_EVENTS
from tidings.channels.registry import kinds
from tidings.domain.errors import InvalidInput
from tidings.serialize import ts
from tidings.storage.models import (
    AutomationRule,
)

MAX_CONDITIONS = 20
MAX_ACTIONS = 20
MAX_PATTERN_LENGTH = 200
MAX_VALUE_LENGTH = 200
MAX_NOTE_LENGTH = 10_000
MAX_TIMER_MINUTES = 7 * 24 * 60
# Fractions of a minute are accepted (the tests use seconds); 3 s is the floor.
MIN_TIMER_MINUTES = 0.05
MAX_SNOOZE_MINUTES = 90 * 24 * 60

CONDITION_TYPES = (
    "channel_kind",
    "inbox",
    "text_contains",
    "text_matches",
    "contact_attribute",
    "label",
    "business_hours",
    "language",
)
ACTION_TYPES = (
    "assign_agent",
    "assign_team",
    "add_label",
    "set_priority",
    "snooze",
    "send_canned_reply",
    "send_template",
    "add_note",
    "webhook",
    "resolve",
)
LANGUAGE_CODE = regex.compile(r"^[a-z]{2,3}(-[a-z]{2,4})?$")


def compile_pattern(pattern: str) -> regex.Pattern[str]:
    """A customer-text pattern: length-capped, compiled up front, case-insensitive. Matching
    runs with a timeout (see conditions.py), so a catastrophic pattern cannot stall a worker."""
    if not pattern or len(pattern) > MAX_PATTERN_LENGTH or "\x00" in pattern:
        raise InvalidInput(f"pattern: 1 to {MAX_PATTERN_LENGTH} characters")
    try:
        return regex.compile(pattern, regex.IGNORECASE | regex.V1)
    except regex.error as exc:
        raise InvalidInput(f"pattern: not a valid regular expression ({exc})") from None


def _str(value: Any, where: str, limit: int = MAX_VALUE_LENGTH) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit or "\x00" in value:
        raise InvalidInput(f"{where}: text of 1 to {limit} characters")
    return value.strip()


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**53:
        raise InvalidInput(f"{where}: an id")
    return value


def _list(value: Any, where: str, limit: int = 50) -> list[Any]:
    if not isinstance(value, list) or not value or len(value) > limit:
        raise InvalidInput(f"{where}: a list of 1 to {limit} values")
    return value


def _minutes(value: Any, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise InvalidInput(f"{where}: a number of minutes from {lo:g} to {hi:g}")
    return float(value)


def _condition(raw: Any, i: int) -> dict[str, Any]:
    where = f"conditions[{i}]"
    if not isinstance(raw, dict) or raw.get("type") not in CONDITION_TYPES:
        raise InvalidInput(f"{where}.type: one of {', '.join(CONDITION_TYPES)}")
    kind = raw["type"]
    out: dict[str, Any] = {"type": kind}
    if raw.get("negate"):
        out["negate"] = True
    if kind == "channel_kind":
        values = [_str(v, f"{where}.values", 32) for v in _list(raw.get("values"), where)]
        unknown = [v for v in values if v not in kinds()]
        if unknown:
            raise InvalidInput(f"{where}.values: unknown channel kind {str(unknown[0])[:40]!r}")
        out["values"] = sorted(set(values))
    elif kind == "inbox":
        out["values"] = sorted(
            {_int(v, f"{where}.values") for v in _list(raw.get("values"), where)}
        )
    elif kind == "text_contains":
        out["values"] = [_str(v, f"{where}.values") for v in _list(raw.get("values"), where)]
    elif kind == "text_matches":
        pattern = raw.get("pattern")
        compile_pattern(pattern if isinstance(pattern, str) else "")
        out["pattern"] = pattern
    elif kind == "contact_attribute":
        out["key"] = _str(raw.get("key"), f"{where}.key", 100)
        value = raw.get("value")
        if (
            not isinstance(value, str | int | float | bool)
            or (isinstance(value, str) and (len(value) > MAX_VALUE_LENGTH or "\x00" in value))
            or (isinstance(value, float) and not math.isfinite(value))
            or (isinstance(value, int) and abs(value) >= 2**53)
        ):
            raise InvalidInput(f"{where}.value: text, a number or true/false")
        out["value"] = value
    elif kind == "label":
        out["name"] = _str(raw.get("name"), f"{where}.name", 100)
    elif kind == "business_hours":
        if not isinstance(raw.get("inside"), bool):
            raise InvalidInput(f"{where}.inside: true (inside hours) or false (outside)")
        out["inside"] = raw["inside"]
    elif kind == "language":
        values = [_str(v, f"{where}.values", 10).lower() for v in _list(raw.get("values"), where)]
        if any(not LANGUAGE_CODE.match(v) for v in values):
            raise InvalidInput(f"{where}.values: ISO 639-1 codes such as en, es, pt")
        out["values"] = values
    return out


def _action(raw: Any, i: int) -> dict[str, Any]:
    where = f"actions[{i}]"
    if not isinstance(raw, dict) or raw.get("type") not in ACTION_TYPES:
        raise InvalidInput(f"{where}.type: one of {', '.join(ACTION_TYPES)}")
    kind = raw["type"]
    out: dict[str, Any] = {"type": kind}
    if kind == "assign_agent":
        out["agent_id"] = _int(raw.get("agent_id"), f"{where}.agent_id")
    elif kind == "assign_team":
        out["team_id"] = _int(raw.get("team_id"), f"{where}.team_id")
    elif kind == "add_label":
        out["name"] = _str(raw.get("name"), f"{where}.name", 100)
    elif kind == "set_priority":
        if raw.get("priority") not in PRIORITIES:
            raise InvalidInput(f"{where}.priority: one of {', '.join(PRIORITIES)}")
        out["priority"] = raw["priority"]
    elif kind == "snooze":
        if raw.get("until") == "next_opening":
            out["until"] = "next_opening"
        else:
            out["minutes"] = _minutes(raw.get("minutes"), f"{where}.minutes", 1, MAX_SNOOZE_MINUTES)
    elif kind == "send_canned_reply":
        out["canned_reply_id"] = _int(raw.get("canned_reply_id"), f"{where}.canned_reply_id")
    elif kind == "send_template":
        out["template_id"] = _int(raw.get("template_id"), f"{where}.template_id")
        params = raw.get("params") or []
        if not isinstance(params, list) or len(params) > 20:
            raise InvalidInput(f"{where}.params: a list of up to 20 texts")
        out["params"] = [_str(p, f"{where}.params", 1000) for p in params]
    elif kind == "add_note":
        out["text"] = _str(raw.get("text"), f"{where}.text", MAX_NOTE_LENGTH)
    elif kind == "webhook":
        url = _str(raw.get("url"), f"{where}.url", 2000)
        if not url.startswith(("https://", "http://")):
            raise InvalidInput(f"{where}.url: an http(s) URL")
        out["url"] = url
        if raw.get("secret") is not None:
            out["secret"] = _str(raw.get("secret"), f"{where}.secret", 500)
    return out


def validate_rule(raw: Any) -> dict[str, Any]:
    """The rule as stored (ids not yet checked against the workspace: see `_check_refs`)."""
    if not isinstance(raw, dict):
        raise InvalidInput("a rule is a JSON object")
    name = _str(raw.get("name"), "name")
    event = raw.get("event")
    if event not in RULE_EVENTS:
        raise InvalidInput(f"event: one of {', '.join(RULE_EVENTS)}")
    params: dict[str, Any] = {}
    if event in TIMED_EVENTS:
        params["minutes"] = _minutes(
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
        "conditions": [_condition(c, i) for i, c in enumerate(conditions)],
        "actions": [_action(a, i) for i, a in enumerate(actions)],
    }


def rule_dict(rule: AutomationRule) -> dict[str, Any]:
    actions = []
    for a in rule.actions or []:
        shown = {k: v for k, v in a.items() if k != "secret_encrypted"}
        if a["type"] == "webhook":
            shown["has_secret"] = "secret_encrypted" in a
        actions.append(shown)
    return {
        "id": rule.id,
        "name": rule.name,
        "active": rule.active,
        "event": rule.event,
        "minutes": (rule.event_params or {}).get("minutes"),
        "match": rule.match,
        "conditions": rule.conditions or [],
        "actions": actions,
        "position": rule.position,
        "created_at": ts(rule.created_at),
        "updated_at": ts(rule.updated_at),
    }
